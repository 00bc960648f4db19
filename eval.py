"""mIoU of a folder of label maps against the VOC ground truth (SPEC §9).

    python eval.py --pred Data/GCN4DeepLab/Label --gt Data/VOC12/VOC2012/SegmentationClassAug \
                   --list Data/VOC12/train.txt

Prints the per-class IoU table and pixel accuracy, and ends with ``mIoU: 67.89``.
"""
import argparse
import sys

from wsgcn.metrics import evaluate_label_maps, format_iou_table
from wsgcn.voc import read_image_list


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", default="Data/GCN4DeepLab/Label", help="folder of predicted label maps <name>.png")
    parser.add_argument("--gt", default="Data/VOC12/VOC2012/SegmentationClassAug",
                        help="folder of ground-truth label maps <name>.png (255 = void)")
    parser.add_argument("--list", default="Data/VOC12/train.txt", help="image list (bare names or DeepLab-style lines)")
    parser.add_argument("--upsample", action="store_true",
                        help="upsample (nearest) predictions smaller than their ground truth instead of failing")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        names = read_image_list(args.list)
        conf = evaluate_label_maps(args.pred, args.gt, names, upsample=args.upsample)
    except (FileNotFoundError, ValueError) as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 1
    print(f"{len(names)} images, predictions {args.pred}")
    print(format_iou_table(conf))
    return 0


if __name__ == "__main__":
    sys.exit(main())

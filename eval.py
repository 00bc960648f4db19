r"""mIoU of a folder of label maps against the VOC ground truth (docs/method.md §9).

    python eval.py --pred Data/GCN4DeepLab/Label --gt Data/VOC12/VOC2012/SegmentationClassAug \
                   --list Data/VOC12/train.txt

Prints the per-class IoU table and pixel accuracy, and ends with ``mIoU: 67.89``.  Pixels are
counted as IRNet's eval_sem_seg counts them: every pixel whose ground truth is a class, a
prediction of 255 as background; any other value outside the 21 classes is an error.
``--protocol`` adds per-class precision, recall and IRNet's false-positive / false-negative
ratios, and the background's FP and FN and their means over the object classes (the last line
stays ``mIoU: ...``); ``--json PATH`` writes all these figures, per class and overall, as JSON.
``--confusion_csv PATH`` writes the 21 x 21 confusion matrix (pixel counts, rows = ground truth);
``--confusion_png PATH`` draws it row-normalised as a heat map (needs matplotlib).
"""
import argparse
import os
import sys
from pathlib import Path

from wsgcn.metrics import evaluate_label_maps, format_iou_table, write_confusion_csv, write_scores_json
from wsgcn.plots import plot_confusion, pyplot
from wsgcn.voc import read_image_list


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", default="Data/GCN4DeepLab/Label", help="folder of predicted label maps <name>.png")
    parser.add_argument("--gt", default="Data/VOC12/VOC2012/SegmentationClassAug",
                        help="folder of ground-truth label maps <name>.png (255 = void)")
    parser.add_argument("--list", default="Data/VOC12/train.txt", help="image list (bare names or DeepLab-style lines)")
    parser.add_argument("--upsample", action="store_true",
                        help="upsample (nearest) predictions smaller than their ground truth instead of failing")
    parser.add_argument("--protocol", action="store_true",
                        help="also print per-class precision, recall, FP and FN ratios, and the background's "
                             "FP / FN and their object-class means")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every figure (per class and overall, fractions) here as JSON")
    parser.add_argument("--confusion_csv", metavar="PATH",
                        help="also write the confusion matrix here: header 'gt\\pred,<classes>', pixel counts")
    parser.add_argument("--confusion_png", metavar="PATH",
                        help="also draw the row-normalised confusion matrix here, with the mIoU in the title")
    return parser


def output_path_problem(path):
    """Why ``path`` cannot be written as a file (the output is written after the evaluation, so
    a bad path must be caught before it), or None.  Missing parent folders are created."""
    path = Path(path)
    if path.is_dir():
        return "is a folder"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:  # the folder that will hold the new ones
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be written: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be written: folder {parent} is not writable"
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    for flag in ("json", "confusion_csv", "confusion_png"):
        path = getattr(args, flag)
        problem = output_path_problem(path) if path else None
        if problem:  # an argument error, as argparse's: exit status 2
            print(f"eval.py: error: --{flag} {path} {problem}", file=sys.stderr)
            return 2
    try:
        if args.confusion_png:
            pyplot()  # fail now, not after the evaluation, when matplotlib is missing
        names = read_image_list(args.list)
        conf = evaluate_label_maps(args.pred, args.gt, names, upsample=args.upsample)
    except (ImportError, FileNotFoundError, ValueError) as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 1
    print(f"{len(names)} images, predictions {args.pred}")
    print(format_iou_table(conf, protocol=args.protocol))
    try:  # the paths were checked above; a disk can still be full
        if args.json:
            write_scores_json(args.json, conf, len(names), pred=str(args.pred), gt=str(args.gt), list=str(args.list))
        if args.confusion_csv:
            write_confusion_csv(args.confusion_csv, conf)
        if args.confusion_png:
            plot_confusion(args.confusion_png, conf, f"{args.pred} ({len(names)} images)")
    except OSError as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

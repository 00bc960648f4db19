"""The Stage I summary table: mIoU of every stage's labels found under a work directory.

    python -m wsgcn.report --work_dir Data --voc12_root Data/VOC12/VOC2012 --list Data/VOC12/train.txt
"""
import argparse
import sys

from wsgcn.cams import cam_confusion, find_cam_file
from wsgcn.layout import WorkDir
from wsgcn.metrics import evaluate_label_maps, mean_iou, pixel_accuracy
from wsgcn.voc import VOC12, read_image_list


def stage_rows(work, voc, names, cam_eval_thres=0.15):
    """(stage, confusion matrix) for each stage whose outputs exist for every image."""
    rows = []
    if all(find_cam_file(work.cam, n).is_file() for n in names):
        rows.append(("CAM", cam_confusion(work.cam, voc, names, cam_eval_thres)))
    for stage, folder in (("random walk (IRNet)", work.sem_seg),):
        if all((folder / f"{n}.png").is_file() for n in names):
            rows.append((stage, evaluate_label_maps(folder, voc.gt_dir, names)))
    return rows


def format_table(rows):
    lines = [f"{'labels':<22}{'mIoU':>8}{'pix.acc':>9}"]
    lines += [f"{stage:<22}{100 * mean_iou(c):>8.2f}{100 * pixel_accuracy(c):>9.2f}" for stage, c in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="Data")
    parser.add_argument("--voc12_root", default="Data/VOC12/VOC2012")
    parser.add_argument("--list", default="Data/VOC12/train.txt")
    parser.add_argument("--cam_eval_thres", type=float, default=0.15)
    args = parser.parse_args(argv)
    names = read_image_list(args.list)
    rows = stage_rows(WorkDir(args.work_dir), VOC12(args.voc12_root), names, args.cam_eval_thres)
    if not rows:
        print(f"report: no stage outputs for {args.list} under {args.work_dir}", file=sys.stderr)
        return 1
    print(f"Stage I on {len(names)} images ({args.list}):")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

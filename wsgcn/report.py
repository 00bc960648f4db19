"""The Stage I summary table: mIoU of every stage's labels found under a work directory.

    python -m wsgcn.report --work_dir Data --voc12_root Data/VOC12/VOC2012 --list Data/VOC12/train.txt
"""
import argparse
import sys

from wsgcn.cams import cam_confusion
from wsgcn.scores import find_score_file
from wsgcn.io import load_label_png
from wsgcn.layout import WorkDir
from wsgcn.metrics import evaluate_label_maps, mean_iou, pixel_accuracy
from wsgcn.voc import IGNORE_INDEX, NUM_CLASSES, VOC12, read_image_list


def partial_label_stats(folder, voc, names):
    """(precision, coverage) of partial labels (255 = unlabelled) against the ground truth:
    the fraction of labelled pixels that are right, and of the valid pixels that are labelled."""
    right = labelled = valid = 0
    for name in names:
        gt, labels = voc.load_gt(name), load_label_png(folder / f"{name}.png")
        if labels.shape != gt.shape:
            raise ValueError(f"{folder / name}.png: partial labels {labels.shape} but ground truth {gt.shape}")
        counted = (gt < NUM_CLASSES) & (labels != IGNORE_INDEX)
        right += int((counted & (labels == gt)).sum())
        labelled += int(counted.sum())
        valid += int((gt < NUM_CLASSES).sum())
    return right / max(labelled, 1), labelled / max(valid, 1)


STAGES = (  # (row name, WorkDir attribute of its label folder)
    ("random walk (IRNet)", "sem_seg"),
    ("GCN", "gcn_label"),
    ("GCN + CRF", "crf_label"),
)


def stage_rows(work, voc, names, cam_eval_thres=0.15):
    """(stage, confusion matrix) for each stage whose outputs exist for every image."""
    rows = []
    if all(find_score_file(work.cam, n).is_file() for n in names):
        rows.append(("CAM", cam_confusion(work.cam, voc, names, cam_eval_thres)))
    for stage, attribute in STAGES:
        folder = getattr(work, attribute)
        if all((folder / f"{n}.png").is_file() for n in names):
            rows.append((stage, evaluate_label_maps(folder, voc.gt_dir, names)))
    return rows


def format_table(rows, partial=None):
    """The mIoU table; ``partial`` = (precision, coverage) of the partial labels, when made."""
    lines = [f"{'labels':<22}{'mIoU':>8}{'pix.acc':>9}"]
    lines += [f"{stage:<22}{100 * mean_iou(c):>8.2f}{100 * pixel_accuracy(c):>9.2f}" for stage, c in rows]
    if partial is not None:
        lines.append(f"partial labels: precision {100 * partial[0]:.2f} %, coverage {100 * partial[1]:.2f} %")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="Data")
    parser.add_argument("--voc12_root", default="Data/VOC12/VOC2012")
    parser.add_argument("--list", default="Data/VOC12/train.txt")
    parser.add_argument("--cam_eval_thres", type=float, default=0.15)
    args = parser.parse_args(argv)
    names = read_image_list(args.list)
    work, voc = WorkDir(args.work_dir), VOC12(args.voc12_root)
    rows = stage_rows(work, voc, names, args.cam_eval_thres)
    if not rows:
        print(f"report: no stage outputs for {args.list} under {args.work_dir}", file=sys.stderr)
        return 1
    partial = None
    if all((work.partial_labels_full / f"{n}.png").is_file() for n in names):
        partial = partial_label_stats(work.partial_labels_full, voc, names)
    print(f"Stage I on {len(names)} images ({args.list}):")
    print(format_table(rows, partial))
    return 0


if __name__ == "__main__":
    sys.exit(main())

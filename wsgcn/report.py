r"""The summary table: mIoU of every stage's labels found under a work directory.

    python -m wsgcn.report --work_dir Data --voc12_root Data/VOC12/VOC2012 --list Data/VOC12/train.txt \
        [--seg_val_list Data/VOC12/val.txt [--upper_bound Data/DeepLab/val_gt/Label]]

Stage I (pseudo labels of ``--list``), then with ``--seg_val_list`` Stage II: DeepLab's labels
of those images without and with the CRF, and with ``--upper_bound`` the labels of the same
network trained on the ground truth, and the ratio of the two, as WSSS papers report it.
Any list with ground truth works (``train``, ``train_aug``, ``val``); an image of a list
without its ground-truth map is an error naming the images (exit status 1).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from wsgcn.cams import cam_confusion
from wsgcn.scores import find_score_file
from wsgcn.io import load_label_png
from wsgcn.layout import WorkDir
from wsgcn.metrics import evaluate_label_maps, mean_iou, require_files, summary_header, summary_line
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
    """(stage, confusion matrix) for each stage whose outputs exist for every image.

    ``cam_eval_thres``: the CAMs' background score, or a sequence of them (IRN/config.py's
    sweep), of which the first is used.  Every image needs its ground truth.
    """
    require_files(voc.gt_dir, names, "ground-truth label maps")
    rows = []
    if all(find_score_file(work.cam, n).is_file() for n in names):
        bg_score = float(np.ravel(cam_eval_thres)[0])
        rows.append(("CAM", cam_confusion(work.cam, voc, names, bg_score)))
    for stage, attribute in STAGES:
        folder = getattr(work, attribute)
        if all((folder / f"{n}.png").is_file() for n in names):
            rows.append((stage, evaluate_label_maps(folder, voc.gt_dir, names)))
    return rows


def stage2_rows(work, voc, names, list_path, upper_bound=None):
    """(row, confusion matrix) for Stage II's labels of ``names`` that exist for every image."""
    require_files(voc.gt_dir, names, "ground-truth label maps")
    out = work.deeplab(list_path)
    folders = [("DeepLab", out / "Label"), ("DeepLab + CRF", out / "CRF_Label")]
    if upper_bound:
        folders.append(("DeepLab, ground truth", Path(upper_bound)))
    return [(row, evaluate_label_maps(folder, voc.gt_dir, names)) for row, folder in folders
            if all((folder / f"{n}.png").is_file() for n in names)]


def format_table(rows, partial=None):
    """The mIoU table with IRNet's false-positive and false-negative ratios (means over the
    object classes, :func:`wsgcn.metrics.class_scores`); ``partial`` = (precision, coverage) of
    the partial labels, when made."""
    lines = [summary_header("labels", 22)] + [summary_line(stage, conf, 22) for stage, conf in rows]
    if partial is not None:
        lines.append(f"partial labels: precision {100 * partial[0]:.2f} %, coverage {100 * partial[1]:.2f} %")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="Data")
    parser.add_argument("--voc12_root", default="Data/VOC12/VOC2012")
    parser.add_argument("--list", default="Data/VOC12/train.txt")
    parser.add_argument("--cam_eval_thres", type=float, default=0.15)
    parser.add_argument("--seg_val_list", default="", help="Stage II rows: DeepLab's labels of these images")
    parser.add_argument("--upper_bound", default="", help="Stage II: label folder of the network trained on the "
                                                           "ground truth (adds a row and the ratio)")
    args = parser.parse_args(argv)
    try:
        work, voc = WorkDir(args.work_dir), VOC12(args.voc12_root)
        status = print_stage1(work, voc, args.list, args.cam_eval_thres, required=not args.seg_val_list)
        if args.seg_val_list:
            status = max(status, print_stage2(work, voc, args.seg_val_list, args.upper_bound))
    except (FileNotFoundError, ValueError) as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    return status


def print_stage1(work, voc, list_path, cam_eval_thres, required=True):
    """The Stage I table of ``list_path``; 1 if ``required`` and no stage has outputs."""
    names = read_image_list(list_path)
    rows = stage_rows(work, voc, names, cam_eval_thres)
    if not rows:
        print(f"report: no Stage I outputs for {list_path} under {work.root}", file=sys.stderr)
        return 1 if required else 0
    partial = None
    if all((work.partial_labels_full / f"{n}.png").is_file() for n in names):
        partial = partial_label_stats(work.partial_labels_full, voc, names)
    print(f"Stage I on {len(names)} images ({list_path}):")
    print(format_table(rows, partial))
    return 0


def print_stage2(work, voc, list_path, upper_bound=""):
    """The Stage II table of ``list_path``, and the ratio to the upper bound when given."""
    names = read_image_list(list_path)
    rows = dict(stage2_rows(work, voc, names, list_path, upper_bound))
    if "DeepLab" not in rows:
        print(f"report: no Stage II labels for {list_path} in {work.deeplab(list_path)}", file=sys.stderr)
        return 1
    print(f"\nStage II on {len(names)} images ({list_path}):")
    print(format_table(list(rows.items())))
    if "DeepLab, ground truth" in rows:
        ratio = mean_iou(rows["DeepLab"]) / mean_iou(rows["DeepLab, ground truth"])
        print(f"DeepLab on the pseudo labels / on the ground truth: {100 * ratio:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

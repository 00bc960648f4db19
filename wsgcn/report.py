r"""The summary table: mIoU of every stage's labels found under a work directory.

    python -m wsgcn.report --work_dir Data --voc12_root Data/VOC12/VOC2012 --list Data/VOC12/train.txt \
        [--seg_val_list Data/VOC12/val.txt [--upper_bound Data/DeepLab/val_gt/Label]]

Stage I (pseudo labels of ``--list``), then with ``--seg_val_list`` Stage II: DeepLab's labels
of those images without and with the CRF, and with ``--upper_bound`` the labels of the same
network trained on the ground truth, and the ratio of the two, as WSSS papers report it.
Any list with ground truth works (``train``, ``train_aug``, ``val``); an image of a list
without its ground-truth map is an error naming the images (exit status 1, as when a table asked
for has nothing to score).  A stage whose outputs exist for only some images is scored on those,
and a line under the table says so: ``GCN: 10 of 13 images (3 without labels: a, b, c)``.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsgcn.infra.config import CAM_EVAL_THRES, LABEL_LIST, CommonConfig, field
from wsgcn.infra.io import load_label_png
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.scripts import EvaluationFailed, tool_main
from wsgcn.seg.cams import cam_scores
from wsgcn.seg.dataset import IGNORE_INDEX, DataConfig, read_image_list
from wsgcn.seg.metrics import (
    label_map_confusion,
    load_ground_truth,
    mean_iou,
    name_some,
    require_files,
    score_images,
    summary_header,
    summary_line,
)
from wsgcn.seg.scores import find_score_file


def partial_label_stats(folder, data, names):
    """(precision, coverage) of partial labels (255 = unlabelled) against the ground truth:
    the fraction of labelled pixels that are right, and of the valid pixels that are labelled."""
    right = labelled = valid = 0
    for name in names:
        gt = load_ground_truth(data.gt_path(name), data.num_classes, data.image_path(name))
        labels = load_label_png(folder / f"{name}.png")
        if labels.shape != gt.shape:
            raise ValueError(f"{folder / name}.png: partial labels {labels.shape} but ground truth {gt.shape}")
        counted = (gt < data.num_classes) & (labels != IGNORE_INDEX)
        right += int((counted & (labels == gt)).sum())
        labelled += int(counted.sum())
        valid += int((gt < data.num_classes).sum())
    return right / max(labelled, 1), labelled / max(valid, 1)


STAGES = (  # (row name, WorkDir attribute of its label folder)
    ("random walk (IRNet)", "sem_seg"),
    ("GCN", "gcn_label"),
    ("GCN + CRF", "crf_label"),
)


def label_map_scores(folder, data, names, complete_only=False):
    """(confusion matrix, Coverage) of the label maps ``folder/<name>.png`` of the images that
    have one (:func:`wsgcn.seg.metrics.score_images`; a broken file is an error); None when no
    image has one, or with ``complete_only`` when some image has none."""
    label_map = lambda name: Path(folder) / f"{name}.png"  # noqa: E731
    if not (all if complete_only else any)(label_map(n).is_file() for n in names):
        return None
    C = data.num_classes
    return score_images(names, lambda n: label_map_confusion(label_map(n), data.gt_path(n), C, data.image_path(n)),
                        [("labels", label_map), ("ground truth", data.gt_path)],
                        np.zeros((C, C), np.int64))


def stage_scores(work, data, names, cam_eval_thres=CAM_EVAL_THRES, complete_only=False):
    """(stage, confusion matrix, Coverage) for each stage whose outputs exist for some images,
    scored on those, or with ``complete_only`` for every image.

    ``cam_eval_thres``: the CAMs' background score, or a sequence of them (IRN/config.py's
    sweep), of which the first is used.  Every image needs its ground truth.
    """
    require_files(data.gt_path, names, "ground-truth label maps")
    rows = []
    cams = [find_score_file(work.cam, n).is_file() for n in names]
    if all(cams) or (any(cams) and not complete_only):
        bg_score = float(np.ravel(cam_eval_thres)[0])
        confs, coverage = cam_scores(work.cam, data, names, [bg_score])
        rows.append(("CAM", confs[0], coverage))
    for stage, attribute in STAGES:
        scored = label_map_scores(getattr(work, attribute), data, names, complete_only)
        if scored is not None:
            rows.append((stage, *scored))
    return rows


def stage_rows(work, data, names, cam_eval_thres=CAM_EVAL_THRES):
    """(stage, confusion matrix) for each stage whose outputs exist for every image (the class
    IoU chart of GCN/visualize.py, which compares stages on the same images)."""
    return [(stage, conf) for stage, conf, _ in stage_scores(work, data, names, cam_eval_thres, complete_only=True)]


def stage2_rows(work, data, names, list_path, upper_bound=None):
    """(row, confusion matrix, Coverage) for Stage II's labels of ``names`` that exist for some images."""
    require_files(data.gt_path, names, "ground-truth label maps")
    out = work.deeplab(list_path)
    folders = [("DeepLab", out / "Label"), ("DeepLab + CRF", out / "CRF_Label")]
    if upper_bound:
        folders.append(("DeepLab, ground truth", Path(upper_bound)))
    rows = [(row, label_map_scores(folder, data, names)) for row, folder in folders]
    return [(row, *scored) for row, scored in rows if scored is not None]


def format_table(rows, partial=None):
    """The mIoU table with IRNet's false-positive and false-negative ratios (means over the
    object classes, :func:`wsgcn.seg.metrics.class_scores`).  rows: (stage, confusion matrix,
    Coverage); a stage scored on only some images gets a line under the table saying on how
    many, and which it lacks.  ``partial`` = (precision, coverage, images scored, images
    listed) of the partial labels, when made."""
    lines = [summary_header("labels", 22)] + [summary_line(stage, conf, 22) for stage, conf, _ in rows]
    lines += [f"{stage}: {len(coverage.scored)} of {len(coverage.names)} images "
              f"({_left_out_names(coverage)})" for stage, _, coverage in rows if not coverage.complete]
    if partial is not None:
        precision, coverage, scored, total = partial
        lines.append(f"partial labels: precision {100 * precision:.2f} %, coverage {100 * coverage:.2f} %"
                     + (f" ({scored} of {total} images)" if scored < total else ""))
    return "\n".join(lines)


def _left_out_names(coverage):
    """'3 without labels: a, b, c'."""
    return "; ".join(f"{len(names)} without {what}: {name_some(names, 3)}"
                     for what, (_, names) in coverage.missing.items())


@dataclass(frozen=True)
class ReportConfig(DataConfig):
    work_dir: str = field(CommonConfig.work_dir, "the run's outputs, as the stages were given them")
    list: str = field(LABEL_LIST, "Stage I: the images whose pseudo labels are scored")
    cam_eval_thres: float = field(CAM_EVAL_THRES, "background score of the CAM labels", low=0, high=1)
    seg_val_list: str = field("", "Stage II rows: DeepLab's labels of these images ('' = no Stage II)")
    upper_bound: str = field("", "Stage II: label folder of the network trained on the ground truth (adds a "
                                 "row and the ratio)")


def run(cfg):
    """Prints the tables; returns 1 when a table that was asked for has no outputs to score."""
    try:
        work, data = WorkDir(cfg.work_dir), cfg.data_set(labels=False)
        if not data.has_ground_truth:
            print(f"report: the {data.name} data set has no ground truth: nothing to score")
            return 0
        status = print_stage1(work, data, cfg.list, cfg.cam_eval_thres, required=not cfg.seg_val_list)
        if cfg.seg_val_list:
            status = max(status, print_stage2(work, data, cfg.seg_val_list, cfg.upper_bound))
    except (FileNotFoundError, ValueError) as error:  # what is scored is missing or wrong: exit status 1
        raise EvaluationFailed(error) from None
    return status


def main(argv=None):
    return tool_main(run, ReportConfig, argv, __doc__, prog="report")


def print_stage1(work, data, list_path, cam_eval_thres, required=True):
    """The Stage I table of ``list_path``; 1 if ``required`` and no stage has outputs."""
    names = read_image_list(list_path)
    rows = stage_scores(work, data, names, cam_eval_thres)
    if not rows:
        print(f"report: no Stage I outputs for {list_path} under {work.root}", file=sys.stderr)
        return 1 if required else 0
    partial = None
    labelled = [n for n in names if (work.partial_labels_full / f"{n}.png").is_file()]
    if labelled:
        partial = (*partial_label_stats(work.partial_labels_full, data, labelled), len(labelled), len(names))
    print(f"Stage I on {len(names)} images ({list_path}):")
    print(format_table(rows, partial))
    return 0


def print_stage2(work, data, list_path, upper_bound=""):
    """The Stage II table of ``list_path``, and the ratio to the upper bound when given and
    scored on the same images."""
    names = read_image_list(list_path)
    rows = stage2_rows(work, data, names, list_path, upper_bound)
    by_row = {row: (conf, coverage) for row, conf, coverage in rows}
    if "DeepLab" not in by_row:
        print(f"report: no Stage II labels for {list_path} in {work.deeplab(list_path)}", file=sys.stderr)
        return 1
    print(f"\nStage II on {len(names)} images ({list_path}):")
    print(format_table(rows))
    if "DeepLab, ground truth" in by_row:
        (pseudo, pseudo_images), (upper, upper_images) = by_row["DeepLab"], by_row["DeepLab, ground truth"]
        if pseudo_images.scored == upper_images.scored:
            ratio = mean_iou(pseudo) / mean_iou(upper)
            print(f"DeepLab on the pseudo labels / on the ground truth: {100 * ratio:.1f} %")
        else:  # a ratio of scores on different images would be no ratio of the two networks
            print("DeepLab on the pseudo labels / on the ground truth: not computed, the two rows score "
                  "different images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Step 3: mIoU of the CAMs: background plane ``cam_eval_thres``, argmax (docs/method.md §2).

With several background scores (``--cam_eval_thres 0.05:0.60:0.05``), a sweep: the mIoU, pixel
accuracy and the object classes' mean FP and FN at each score, then the best score, which is
chosen on the ground truth of the evaluated images (an oracle choice, not a tuned setting).
"""
import sys

import numpy as np

from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import INPUT_ERRORS, StepFailed
from wsgcn.seg.cams import cam_scores
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.metrics import format_iou_table, mean_iou, summary_header, summary_line


def format_score(value):
    """A background score with two decimals, or more where two would round it (0.125)."""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def format_sweep(thresholds, confs):
    """The sweep table (percent) and a last line naming the best score, chosen on the ground truth."""
    lines = [summary_header("bg score", 10)]
    lines += [summary_line(format_score(value), conf, 10) for value, conf in zip(thresholds, confs)]
    mious = np.asarray([mean_iou(conf) for conf in confs])
    if np.isfinite(mious).any():
        best = int(np.nanargmax(mious))  # the lowest of equally good scores
        lines.append(f"best: {format_score(thresholds[best])} (mIoU {100 * mious[best]:.2f}, "
                     f"chosen on the ground truth)")
    else:
        lines.append("best: none (no pixel with ground truth)")
    return "\n".join(lines)


def run(cfg):
    """Score the images of the infer list that have a CAM and a ground truth; if some have not
    (make_cam failed them) or their files are broken, print the score of the others, name the
    ones left out, and raise StepFailed: run_sample goes on with the later steps."""
    names = read_image_list(cfg.infer_list)
    thresholds = sorted(set(float(t) for t in np.atleast_1d(cfg.cam_eval_thres)))
    data = cfg.data_set(labels=False)
    confs, coverage = cam_scores(WorkDir(cfg.work_dir).cam, data, names, thresholds,
                                 cfg.allow_pickle, keep_going=INPUT_ERRORS)
    if len(thresholds) == 1:
        print(f"eval_cam: {coverage.count()}, background score {thresholds[0]}")
        if coverage.scored:
            print(format_iou_table(confs[0], data.classes))
    else:
        print(f"eval_cam: {coverage.count()}, {len(thresholds)} background scores from {format_score(thresholds[0])} "
              f"to {format_score(thresholds[-1])}; FP and FN are the object classes' means")
        if coverage.scored:
            print(format_sweep(thresholds, confs))
    report_left_out("eval_cam", coverage)


def report_left_out(step, coverage):
    """Name the images a step's score leaves out (stderr, after the table) and raise StepFailed;
    nothing when it scored them all."""
    if coverage.complete:
        return
    sys.stdout.flush()  # the table first, then the images it lacks
    print("\n".join(coverage.listing(step)), file=sys.stderr, flush=True)
    raise StepFailed(f"{step}: scored {len(coverage.scored)} of {len(coverage.names)} images; "
                     f"{coverage.left_out()} (listed above)")

"""Step 3: mIoU of the CAMs: background plane ``cam_eval_thres``, argmax (docs/method.md §2).

With several background scores (``--cam_eval_thres 0.05:0.60:0.05``), a sweep: the mIoU, pixel
accuracy and the object classes' mean FP and FN at each score, then the best score, which is
chosen on the ground truth of the evaluated images (an oracle choice, not a tuned setting).
"""
import numpy as np

from wsgcn.cams import cam_confusions
from wsgcn.layout import WorkDir
from wsgcn.metrics import format_iou_table, mean_iou, summary_header, summary_line
from wsgcn.voc import VOC12, read_image_list


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
    names = read_image_list(cfg.infer_list)
    thresholds = sorted(set(float(t) for t in np.atleast_1d(cfg.cam_eval_thres)))
    confs = cam_confusions(WorkDir(cfg.work_dir).cam, VOC12(cfg.voc12_root), names, thresholds, cfg.allow_pickle)
    if len(thresholds) == 1:
        print(f"eval_cam: {len(names)} images, background score {thresholds[0]}")
        print(format_iou_table(confs[0]))
        return
    print(f"eval_cam: {len(names)} images, {len(thresholds)} background scores from "
          f"{format_score(thresholds[0])} to {format_score(thresholds[-1])}; FP and FN are the object classes' means")
    print(format_sweep(thresholds, confs))

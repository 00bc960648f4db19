"""The segmentation metric (docs/method.md §9): one confusion matrix, IoU per class, mIoU, pixel accuracy.

Every step that reports a score (eval_cam, eval_sem_seg, eval.py, the train.sh table) goes
through :func:`evaluate_label_maps`, so all of them count pixels the same way.
"""
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from wsgcn.io import atomic_path, load_label_png
from wsgcn.voc import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(gt, pred, num_classes=NUM_CLASSES):
    """(C, C) int64 matrix, rows = ground truth, columns = prediction.

    Pixels whose ground truth or prediction is outside 0..C-1 (void 255 included) are ignored.
    """
    gt = np.asarray(gt).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in size: {gt.shape} vs {pred.shape}")
    valid = (gt >= 0) & (gt < num_classes) & (pred >= 0) & (pred < num_classes)
    return np.bincount(num_classes * gt[valid] + pred[valid],
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def class_iou(conf):
    """(C,) IoU_c = TP / (TP + FP + FN); NaN for a class absent from both truth and prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf):
    """Mean IoU over the classes that occur (NaN-skipping), as a fraction."""
    iou = class_iou(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(conf):
    conf = np.asarray(conf, dtype=np.float64)
    total = conf.sum()
    return float(np.trace(conf) / total) if total else float("nan")


def format_iou_table(conf, class_names=CLASS_NAMES):
    """Per-class IoU table, pixel accuracy, and a last line ``mIoU: 67.89`` (percent)."""
    iou = class_iou(conf)
    lines = [f"{'class':<14}{'IoU':>8}"]
    for name, value in zip(class_names, iou):
        lines.append(f"{name:<14}{'-' if np.isnan(value) else f'{100 * value:.2f}':>8}")
    lines.append(f"{'pixel acc.':<14}{100 * pixel_accuracy(conf):>8.2f}")
    lines.append(f"mIoU: {100 * mean_iou(conf):.2f}")
    return "\n".join(lines)


def evaluate_label_maps(pred_dir, gt_dir, names, upsample=False, num_classes=NUM_CLASSES):
    """Confusion matrix of the label maps ``pred_dir/<name>.png`` against ``gt_dir/<name>.png``.

    All predictions are checked to exist before any is read, so a missing one fails at once,
    with the list of those missing.  A prediction of another size than its ground truth is an
    error, unless it is smaller and ``upsample`` asks for nearest-neighbour upsampling.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    missing = [n for n in names if not (pred_dir / f"{n}.png").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"{len(missing)} of {len(names)} predictions missing in {pred_dir}: {shown}")
    conf = np.zeros((num_classes, num_classes), np.int64)
    for name in names:
        gt = load_label_png(gt_dir / f"{name}.png")
        pred_path = pred_dir / f"{name}.png"
        pred = load_label_png(pred_path)
        if pred.shape != gt.shape:
            smaller = pred.shape[0] <= gt.shape[0] and pred.shape[1] <= gt.shape[1]
            if not (upsample and smaller):
                hint = " (pass --upsample to upsample it)" if smaller else ""
                raise ValueError(f"{pred_path}: prediction is {pred.shape[0]}x{pred.shape[1]} but the "
                                 f"ground truth is {gt.shape[0]}x{gt.shape[1]}{hint}")
            pred = np.asarray(Image.fromarray(pred).resize((gt.shape[1], gt.shape[0]), Image.NEAREST))
        conf += confusion_matrix(gt, pred, num_classes)
    return conf


def write_confusion_csv(path, conf, class_names=CLASS_NAMES):
    """Write the (C, C) confusion matrix as CSV, atomically: a header ``gt\\pred,<class names>``,
    then one row per ground-truth class, its name and C integer pixel counts."""
    conf = np.asarray(conf)
    if conf.shape != (len(class_names), len(class_names)):
        raise ValueError(f"{path}: confusion matrix {conf.shape} does not fit {len(class_names)} classes")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["gt\\pred", *class_names])
        writer.writerows([name, *map(int, counts)] for name, counts in zip(class_names, conf))


def class_iou_table(rows):
    """(S, C + 1) IoU fractions of S stages: each row the C class IoUs (NaN for an absent class),
    then the mIoU.  rows: list of (stage, (C, C) confusion matrix)."""
    return np.array([np.append(class_iou(conf), mean_iou(conf)) for _, conf in rows])


def write_class_iou_csv(path, rows, class_names=CLASS_NAMES):
    """Write per-class IoU in percent (2 decimals) as CSV, atomically.

    rows: list of (stage, (C, C) confusion matrix).  Header ``class,<stages>``; one line per
    class, then ``mIoU``.  A class absent from truth and prediction (IoU NaN) is an empty cell.
    """
    table = class_iou_table(rows).T  # (C + 1, S)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", *(stage for stage, _ in rows)])
        for name, values in zip([*class_names, "mIoU"], table):
            writer.writerow([name, *("" if np.isnan(v) else f"{100 * v:.2f}" for v in values)])

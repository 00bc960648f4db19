"""The segmentation metric (docs/method.md §9): one confusion matrix, IoU per class, mIoU, pixel
accuracy, and the figures papers add (precision, recall, IRNet's false-positive and
false-negative ratios), all computed from that matrix.

Every step that reports a score (eval_cam, eval_sem_seg, eval.py, the train.sh table) counts
pixels as IRNet's ``eval_sem_seg`` does (:func:`confusion_matrix`), so all of them count pixels
the same way, and :func:`score_images` says which images a score covers.
"""
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from wsgcn.infra.io import atomic_path, load_label_png, save_text
from wsgcn.seg.dataset import IGNORE_INDEX


def _values(values):
    """'50' or '50, 60, 100' for the distinct values of an array (at most 5 shown)."""
    return name_some([str(int(v)) for v in np.unique(values)])


def _prefix(source):
    return f"{source}: " if source else ""


def check_ground_truth_values(gt, num_classes, source=None):
    """Raise ValueError, naming ``source`` (its file) and the values, unless every pixel of
    ``gt`` is a class 0..C-1 or void (255): another value is a broken ground truth, not a pixel
    to skip."""
    gt = np.asarray(gt)
    bad = gt[((gt < 0) | (gt >= num_classes)) & (gt != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f"{_prefix(source)}ground-truth value {_values(bad)} is neither a class "
                         f"(0..{num_classes - 1}) nor void ({IGNORE_INDEX})")


def confusion_matrix(gt, pred, num_classes, gt_source=None, pred_source=None):
    """(C, C) int64 matrix, rows = ground truth, columns = prediction, counted as IRNet's
    ``eval_sem_seg`` counts them (chainercv's confusion):

    - every pixel whose ground truth is a class 0..C-1 counts; void (255) pixels do not;
    - a prediction of 255 counts as background (0), so an unlabelled pixel is a miss, not a
      pixel left out of the score;
    - any other value outside 0..C-1, in the truth or the prediction, is a ValueError naming
      the value and ``gt_source`` or ``pred_source`` (the file) when given: such a pixel would
      otherwise be silently dropped.
    """
    gt = np.asarray(gt).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in size: {gt.shape} vs {pred.shape}")
    check_ground_truth_values(gt, num_classes, gt_source)
    pred = np.where(pred == IGNORE_INDEX, 0, pred)
    bad = pred[(pred < 0) | (pred >= num_classes)]
    if bad.size:
        raise ValueError(f"{_prefix(pred_source)}prediction value {_values(bad)} is neither a class "
                         f"(0..{num_classes - 1}) nor {IGNORE_INDEX} (read as background)")
    valid = gt != IGNORE_INDEX
    return np.bincount(num_classes * gt[valid] + pred[valid],
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _ratio(numerator, denominator):
    """numerator / denominator elementwise, NaN where the denominator is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _nanmean(values):
    """Mean of the finite values (the classes that occur); NaN, without a warning, when there are none."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def class_iou(conf):
    """(C,) IoU_c = TP / (TP + FP + FN); NaN for a class absent from both truth and prediction."""
    return class_scores(conf)["iou"]


def mean_iou(conf):
    """Mean IoU over the classes that occur (NaN-skipping), as a fraction."""
    return _nanmean(class_iou(conf))


def pixel_accuracy(conf):
    conf = np.asarray(conf, dtype=np.float64)
    total = conf.sum()
    return float(np.trace(conf) / total) if total else float("nan")


def class_scores(conf):
    """Every figure of the (C, C) confusion matrix (rows = truth), class 0 the background.

    Per class c, with TP_c = conf[c, c], gt_c its row sum, pred_c its column sum and
    union_c = gt_c + pred_c - TP_c, as (C,) float64 arrays (fractions; NaN where the
    denominator is 0):

    - ``iou``: TP_c / union_c;
    - ``precision``: TP_c / pred_c; ``recall``: TP_c / gt_c;
    - ``fp``: 1 - gt_c / union_c, the share of the union predicted c but not c (IRNet's
      false-positive ratio); ``fn``: 1 - pred_c / union_c, the share that is c but not
      predicted c (false negatives).  IoU + FP + FN = 1 for a class that occurs.

    And the summaries, floats: ``miou`` (mean over the classes that occur), ``pixel_accuracy``,
    ``fp_background``, ``fn_background``, and ``fp_objects``, ``fn_objects``: the means over
    the object classes 1..C-1 that occur.
    """
    conf = np.asarray(conf, dtype=np.float64)
    tp, gt, pred = np.diag(conf), conf.sum(1), conf.sum(0)
    union = gt + pred - tp
    scores = {"iou": _ratio(tp, union), "precision": _ratio(tp, pred), "recall": _ratio(tp, gt),
              "fp": _ratio(pred - tp, union), "fn": _ratio(gt - tp, union)}
    scores.update(miou=_nanmean(scores["iou"]), pixel_accuracy=pixel_accuracy(conf),
                  fp_background=float(scores["fp"][0]), fn_background=float(scores["fn"][0]),
                  fp_objects=_nanmean(scores["fp"][1:]), fn_objects=_nanmean(scores["fn"][1:]))
    return scores


SUMMARY_COLUMNS = (("miou", "mIoU", 8), ("pixel_accuracy", "pix.acc", 9), ("fp_objects", "FP", 8),
                   ("fn_objects", "FN", 8))


def summary_header(title, width):
    """The header of :func:`summary_line` rows."""
    return f"{title:<{width}}" + "".join(f"{name:>{w}}" for _, name, w in SUMMARY_COLUMNS)


def summary_line(label, conf, width):
    """One row of a summary table: mIoU, pixel accuracy and the object classes' mean FP and FN
    (:func:`class_scores`, percent) of a confusion matrix, after ``label`` in ``width`` columns."""
    scores = class_scores(conf)
    return f"{label:<{width}}" + "".join(f"{100 * scores[key]:>{w}.2f}" for key, _, w in SUMMARY_COLUMNS)


def _percent(value):
    return "-" if np.isnan(value) else f"{100 * value:.2f}"


PROTOCOL_COLUMNS = (("iou", "IoU"), ("precision", "prec."), ("recall", "recall"), ("fp", "FP"), ("fn", "FN"))


def format_iou_table(conf, class_names, protocol=False):
    """Per-class IoU table, pixel accuracy, and a last line ``mIoU: 67.89`` (percent).

    ``protocol`` adds the columns precision, recall, FP and FN (:func:`class_scores`) and,
    before the last line, the background's FP and FN and their means over the object classes.
    """
    scores = class_scores(conf)
    columns = PROTOCOL_COLUMNS if protocol else PROTOCOL_COLUMNS[:1]
    lines = [f"{'class':<14}" + "".join(f"{title:>8}" for _, title in columns)]
    for c, name in enumerate(class_names):
        lines.append(f"{name:<14}" + "".join(f"{_percent(scores[key][c]):>8}" for key, _ in columns))
    summaries = [("pixel acc.", "pixel_accuracy")]
    if protocol:
        summaries += [("FP background", "fp_background"), ("FN background", "fn_background"),
                      ("FP objects", "fp_objects"), ("FN objects", "fn_objects")]
    lines += [f"{label:<14}{_percent(scores[key]):>8}" for label, key in summaries]
    lines.append(f"mIoU: {100 * scores['miou']:.2f}")
    return "\n".join(lines)


def _json_number(value):
    """A float for JSON, or None for NaN (JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def write_scores_json(path, conf, num_images, class_names, **extra):
    """Write every figure of :func:`class_scores` as JSON, atomically: fractions (0..1), null
    where undefined; ``classes`` lists each class's name, iou, precision, recall, fp and fn;
    ``confusion`` the (C, C) pixel counts; ``extra`` entries (e.g. the prediction folder) are
    added as they are."""
    conf = np.asarray(conf)
    if conf.shape != (len(class_names), len(class_names)):
        raise ValueError(f"{path}: confusion matrix {conf.shape} does not fit {len(class_names)} classes")
    scores = class_scores(conf)
    record = dict(extra, images=int(num_images))
    record.update({key: _json_number(scores[key]) for key in
                   ("miou", "pixel_accuracy", "fp_background", "fn_background", "fp_objects", "fn_objects")})
    record["classes"] = [{"name": name, **{key: _json_number(scores[key][c]) for key, _ in PROTOCOL_COLUMNS}}
                         for c, name in enumerate(class_names)]
    record["confusion"] = conf.astype(np.int64).tolist()
    save_text(path, json.dumps(record, indent=1) + "\n")


def name_some(names, shown=5):
    """'a, b, c' or, for a long list, its first ``shown`` names and ``and 8 more``."""
    names = list(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def require_files(where, names, what, suffix=".png"):
    """Raise FileNotFoundError unless every image's file exists, naming the missing ones:
    ``2 of 3 predictions missing in DIR: c, d``.  ``where``: a folder (``<where>/<name><suffix>``)
    or a function name -> path."""
    path_of = where if callable(where) else (lambda name: Path(where) / f"{name}{suffix}")
    missing = [n for n in names if not path_of(n).is_file()]
    if missing:
        folder = Path(where) if not callable(where) else path_of(missing[0]).parent
        raise FileNotFoundError(f"{len(missing)} of {len(names)} {what} missing in {folder}: {name_some(missing)}")


def image_size(path):
    """(H, W) of an image file from its header, or None when it is absent or unreadable (the
    step that reads the image reports that)."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, SyntaxError):
        return None


def load_ground_truth(gt_path, num_classes, image_path=None):
    """(H, W) uint8 ground-truth label map, checked: every value a class or void
    (:func:`check_ground_truth_values`) and, given ``image_path``, the size of its image.  A
    ground truth of another size than its image is its own fault; without this check it would
    be blamed on the prediction or CAM made from the image."""
    gt = load_label_png(gt_path)
    check_ground_truth_values(gt, num_classes, gt_path)
    size = image_size(image_path) if image_path is not None else None
    if size is not None and size != gt.shape:
        raise ValueError(f"{gt_path}: the ground truth is {gt.shape[0]}x{gt.shape[1]} but its image "
                         f"{image_path} is {size[0]}x{size[1]}")
    return gt


def label_map_confusion(pred_path, gt_path, num_classes, image_path=None, upsample=False):
    """(C, C) confusion matrix of one predicted label map against its ground truth.

    The ground truth is checked first (:func:`load_ground_truth`).  A prediction of another
    size than its ground truth is an error naming the prediction, unless it is smaller and
    ``upsample`` asks for nearest-neighbour upsampling.
    """
    gt = load_ground_truth(gt_path, num_classes, image_path)
    pred = load_label_png(pred_path)
    if pred.shape != gt.shape:
        smaller = pred.shape[0] <= gt.shape[0] and pred.shape[1] <= gt.shape[1]
        if not (upsample and smaller):
            hint = " (pass --upsample to upsample it)" if smaller else ""
            raise ValueError(f"{pred_path}: prediction is {pred.shape[0]}x{pred.shape[1]} but the "
                             f"ground truth is {gt.shape[0]}x{gt.shape[1]}{hint}")
        pred = np.asarray(Image.fromarray(pred).resize((gt.shape[1], gt.shape[0]), Image.NEAREST))
    return confusion_matrix(gt, pred, num_classes, gt_source=gt_path, pred_source=pred_path)


def evaluate_label_maps(pred_dir, gt, names, num_classes, upsample=False):
    """Confusion matrix of the label maps ``pred_dir/<name>.png`` against their ground truth
    (``gt``: a folder of ``<name>.png``, or a function name -> path), every image or an error
    (eval.py; the steps score the images they have, :func:`score_images`).

    All predictions, then all ground-truth maps, are checked to exist before any is read, so a
    missing one fails at once, with the list of those missing.  Then :func:`label_map_confusion`.
    """
    pred_dir = Path(pred_dir)
    gt_path = gt if callable(gt) else (lambda name: Path(gt) / f"{name}.png")
    require_files(pred_dir, names, "predictions")
    require_files(gt_path, names, "ground-truth label maps")
    conf = np.zeros((num_classes, num_classes), np.int64)
    for name in names:
        conf += label_map_confusion(pred_dir / f"{name}.png", gt_path(name), num_classes, upsample=upsample)
    return conf


class Coverage:
    """Which images of a list a score counts, and why it leaves out the others.

    ``scored``: the names counted; ``missing``: {what: (folder, names)} of the images without a
    file (what = ``"CAM"``, ``"ground truth"``, ...); ``failed``: [(name, reason)] of the images
    whose files are broken.
    """

    def __init__(self, names):
        self.names, self.scored, self.missing, self.failed = list(names), [], {}, []

    @property
    def complete(self):
        return len(self.scored) == len(self.names)

    def left_out(self):
        """Why images are left out, counted: ``3 without CAM, 1 failed``."""
        parts = [f"{len(names)} without {what}" for what, (_, names) in self.missing.items()]
        return ", ".join(parts + ([f"{len(self.failed)} failed"] if self.failed else []))

    def count(self, where="listed below"):
        """``13 images``, or when some are left out ``10 of 13 images (3 without CAM, listed below)``."""
        if self.complete:
            return f"{len(self.names)} images"
        return f"{len(self.scored)} of {len(self.names)} images ({self.left_out()}, {where})"

    def listing(self, step):
        """The images left out: a line per missing kind of file (the first few names and the
        count), and a line ``<step>: <name>: <reason>`` per failed image, as per-image steps log."""
        lines = [f"{step}: {len(names)} of {len(self.names)} images without {what} in {folder}: {name_some(names)}"
                 for what, (folder, names) in self.missing.items()]
        return lines + [f"{step}: {name}: {reason}" for name, reason in self.failed]


def score_images(names, count_image, required, total, keep_going=()):
    """Add ``count_image(name)`` into ``total`` (e.g. a zero (C, C) matrix) for every image that
    has its files; returns (total, :class:`Coverage`).

    required: [(what, path_of)]: an image whose ``path_of(name)`` is not a file is left out,
    listed under the first such ``what``.  All are checked before any image is read.
    keep_going: the exception types of a broken input (``wsgcn.infra.per_image.INPUT_ERRORS``): an
    image whose ``count_image`` raises one is left out and listed with the error's message;
    any other exception, and every exception when ``keep_going`` is empty, propagates.
    """
    coverage, present = Coverage(names), []
    for name in names:
        for what, path_of in required:
            path = Path(path_of(name))
            if not path.is_file():
                coverage.missing.setdefault(what, (path.parent, []))[1].append(name)
                break
        else:
            present.append(name)
    for name in present:
        try:
            total += count_image(name)
        except tuple(keep_going) as error:
            coverage.failed.append((name, " ".join(str(error).split()) or type(error).__name__))
            continue
        coverage.scored.append(name)
    return total, coverage


def write_confusion_csv(path, conf, class_names):
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


def write_class_iou_csv(path, rows, class_names):
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

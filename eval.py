r"""mIoU of a folder of label maps against the data set's ground truth (docs/method.md §9).

    python eval.py --pred Data/GCN4DeepLab/Label --list Data/VOC12/train.txt \
                   [--dataset voc12|coco14|PATH.json] [--data_root ROOT] [--gt DIR]

Prints the per-class IoU table and pixel accuracy, and ends with ``mIoU: 67.89``.  Pixels are
counted as IRNet's eval_sem_seg counts them: every pixel whose ground truth is a class, a
prediction of 255 as background; any other value outside the data set's classes is an error.
``--protocol`` adds per-class precision, recall and IRNet's false-positive / false-negative
ratios, and the background's FP and FN and their means over the object classes (the last line
stays ``mIoU: ...``); ``--json PATH`` writes all these figures, per class and overall, as JSON.
``--confusion_csv PATH`` writes the C x C confusion matrix (pixel counts, rows = ground truth);
``--confusion_png PATH`` draws it row-normalised as a heat map (needs matplotlib).
"""
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from wsgcn.infra.config import LABEL_LIST, CommonConfig, field
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.scripts import EvaluationFailed, tool_main
from wsgcn.plots import plot_confusion, pyplot
from wsgcn.seg.dataset import DataConfig, describe, read_image_list
from wsgcn.seg.metrics import evaluate_label_maps, format_iou_table, write_confusion_csv, write_scores_json


@dataclass(frozen=True)
class EvalConfig(DataConfig):
    pred: str = field(str(WorkDir(CommonConfig.work_dir).gcn_label), "folder of predicted label maps <name>.png")
    gt: str = field("", "folder of ground-truth label maps <name>.png (255 = void); '' = the data set's "
                        "(voc12: <voc12_root>/SegmentationClassAug)")
    list: str = field(LABEL_LIST, "image list (bare names or DeepLab-style lines)")
    upsample: bool = field(False, "upsample (nearest) predictions smaller than their ground truth instead of "
                                  "failing (--upsample alone = True)")
    protocol: bool = field(False, "also print per-class precision, recall, FP and FN ratios, and the background's "
                                  "FP / FN and their object-class means (--protocol alone = True)")
    json: str = field("", "also write every figure (per class and overall, fractions) here as JSON ('' = no)")
    confusion_csv: str = field("", "also write the confusion matrix here: header 'gt\\pred,<classes>', pixel "
                                   "counts ('' = no)")
    confusion_png: str = field("", "also draw the row-normalised confusion matrix here, with the mIoU in the title "
                                   "('' = no)")


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


def ground_truth_of(data):
    """The data set's ground-truth path of an image (name -> path); a data set without one is an error."""
    if not data.has_ground_truth:
        raise ValueError(f"the {data.name} data set has no ground truth: pass --gt DIR")
    return data.gt_path


def run(cfg):
    for flag in ("json", "confusion_csv", "confusion_png"):
        path = getattr(cfg, flag)
        problem = output_path_problem(path) if path else None
        if problem:  # a bad setting (exit status 2), found before the evaluation
            raise ValueError(f"--{flag} {path} {problem}")
    if cfg.confusion_png:
        pyplot()  # fail now, not after the evaluation, when matplotlib is missing (exit status 2)
    try:
        classes = describe(cfg.dataset).classes  # with --gt DIR the data set gives only its classes
        gt = Path(cfg.gt) if cfg.gt else ground_truth_of(cfg.data_set(labels=False))
        names = read_image_list(cfg.list)
        conf = evaluate_label_maps(cfg.pred, gt, names, len(classes), upsample=cfg.upsample)
    except (FileNotFoundError, ValueError) as error:  # what is scored is missing or wrong: exit status 1
        raise EvaluationFailed(error) from None
    print(f"{len(names)} images, predictions {cfg.pred}")
    print(format_iou_table(conf, classes, protocol=cfg.protocol))
    if cfg.json:
        gt_source = str(gt) if cfg.gt else str(gt(names[0]).parent)
        write_scores_json(cfg.json, conf, len(names), classes, pred=str(cfg.pred), gt=gt_source, list=str(cfg.list))
    if cfg.confusion_csv:
        write_confusion_csv(cfg.confusion_csv, conf, classes)
    if cfg.confusion_png:
        plot_confusion(cfg.confusion_png, conf, f"{cfg.pred} ({len(names)} images)", classes)


def main(argv=None):
    return tool_main(run, EvalConfig, argv, __doc__, prog="eval.py")


if __name__ == "__main__":
    sys.exit(main())

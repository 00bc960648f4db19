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
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from wsgcn.infra.config import LABEL_LIST, CommonConfig, field
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.scripts import EvaluationFailed, tool_main
from wsgcn.plots import plot_confusion, pyplot
from wsgcn.seg.metrics import evaluate_label_maps, format_iou_table, write_confusion_csv, write_scores_json
from wsgcn.seg.voc import read_image_list


@dataclass(frozen=True)
class EvalConfig:
    pred: str = field(str(WorkDir(CommonConfig.work_dir).gcn_label), "folder of predicted label maps <name>.png")
    gt: str = field(str(Path(CommonConfig.voc12_root, "SegmentationClassAug")),
                    "folder of ground-truth label maps <name>.png (255 = void)")
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


def run(cfg):
    for flag in ("json", "confusion_csv", "confusion_png"):
        path = getattr(cfg, flag)
        problem = output_path_problem(path) if path else None
        if problem:  # a bad setting (exit status 2), found before the evaluation
            raise ValueError(f"--{flag} {path} {problem}")
    if cfg.confusion_png:
        pyplot()  # fail now, not after the evaluation, when matplotlib is missing (exit status 2)
    try:
        names = read_image_list(cfg.list)
        conf = evaluate_label_maps(cfg.pred, cfg.gt, names, upsample=cfg.upsample)
    except (FileNotFoundError, ValueError) as error:  # what is scored is missing or wrong: exit status 1
        raise EvaluationFailed(error) from None
    print(f"{len(names)} images, predictions {cfg.pred}")
    print(format_iou_table(conf, protocol=cfg.protocol))
    if cfg.json:
        write_scores_json(cfg.json, conf, len(names), pred=str(cfg.pred), gt=str(cfg.gt), list=str(cfg.list))
    if cfg.confusion_csv:
        write_confusion_csv(cfg.confusion_csv, conf)
    if cfg.confusion_png:
        plot_confusion(cfg.confusion_png, conf, f"{cfg.pred} ({len(names)} images)")


def main(argv=None):
    return tool_main(run, EvalConfig, argv, __doc__, prog="eval.py")


if __name__ == "__main__":
    sys.exit(main())

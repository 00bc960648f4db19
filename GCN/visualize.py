"""Pictures of Stage I's labels, for a person to look at.

    python GCN/visualize.py --work_dir Data --voc12_root Data/VOC12/VOC2012 --list Data/VOC12/train.txt

For each chosen image (``--names``, else the first ``--num_images`` of ``--list``) writes
``<out>/<name>.png``: one row of panels, each titled: the image, the ground truth, the CAM heat
map (the max of the image's class maps over the image), the IR label, the random-walk labels,
the partial labels, the GCN labels and the CRF labels, in the VOC colours (white = ignore),
with a legend of the classes shown.  A stage not made yet for an image is a grey "(missing)"
panel.  Also writes ``<out>/class_iou.png`` and ``<out>/class_iou.csv``: the per-class IoU and
mIoU of each stage made for every image of ``--list`` (the numbers of ``wsgcn.report``'s table).
``<out>`` defaults to ``<work_dir>/visualize``.  Needs matplotlib.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from GCN.config import PROFILES
from wsgcn.infra.config import CAM_EVAL_THRES, LABEL_LIST, CommonConfig, field
from wsgcn.infra.io import load_label_png, prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.scripts import tool_main
from wsgcn.plots import PANEL_GAP_PX, PANEL_PX, cam_overlay, colour_labels, plot_class_iou, plot_panel_row, pyplot
from wsgcn.report import stage_rows
from wsgcn.seg.dataset import DataConfig, read_image_list
from wsgcn.seg.metrics import write_class_iou_csv
from wsgcn.seg.scores import find_score_file, load_cams


@dataclass(frozen=True)
class VisualizeConfig(CommonConfig, DataConfig):
    # work_dir, voc12_root, allow_pickle ... come from CommonConfig
    list: str = field(LABEL_LIST, "image list: the class IoU is measured on all of it, the first --num_images "
                                  "are drawn")
    names: tuple[str, ...] = field((), "draw these images instead of the first --num_images of --list")
    num_images: int = field(8, "how many images of --list to draw when --names is not given (0: only the "
                               "class IoU)", low=0)
    out: str = field("", "output folder; '' = <work_dir>/visualize")
    panel_px: int = field(PANEL_PX, "width of one panel in pixels", low=8 * PANEL_GAP_PX)
    cam_eval_thres: float = field(CAM_EVAL_THRES, "background score of the CAM labels in the class IoU",
                                  low=0, high=1)


LABEL_PANELS = (  # (title, WorkDir attribute of its label folder), in the pipeline's order
    ("IR label", "ir_label"),
    ("random walk", "sem_seg"),
    ("partial labels", "partial_labels_full"),
    ("GCN", "gcn_label"),
    ("GCN + CRF", "crf_label"),
)
CAM_TITLE = "CAM (max of classes)"


def load_stage_labels(path, image_size):
    """(H, W) uint8 labels of ``path``, or None when the file does not exist (stage not made yet).

    A label map of another size than the image is an error naming the file.
    """
    if not path.is_file():
        return None
    labels = load_label_png(path)
    if labels.shape != tuple(image_size):
        raise ValueError(f"{path}: labels are {labels.shape[0]}x{labels.shape[1]} but the image is "
                         f"{image_size[0]}x{image_size[1]}")
    return labels


def cam_heat(cam_dir, name, image_size, num_object_classes, allow_pickle=False):
    """(H, W) float32 max over the image's foreground classes of its high_res CAM; None when missing."""
    path = find_score_file(cam_dir, name, allow_pickle)
    if not path.is_file():
        return None
    high_res = load_cams(path, num_object_classes, allow_pickle, image_size)["high_res"]  # (K, H, W)
    return high_res.max(0) if len(high_res) else np.zeros(image_size, np.float32)


def image_panels(cfg, data, work, name):
    """The panels of one image: (list of (title, (H, W, 3) uint8 RGB or None), label values shown)."""
    image = data.load_image(name)
    size = image.shape[:2]
    gt = data.load_gt(name) if data.has_ground_truth else None
    if gt is not None and gt.shape != size:
        raise ValueError(f"{data.gt_path(name)}: ground truth is {gt.shape[0]}x{gt.shape[1]} but the image "
                         f"is {size[0]}x{size[1]}")
    cam = cam_heat(work.cam, name, size, data.num_object_classes, cfg.allow_pickle)
    stages = [(title, load_stage_labels(getattr(work, folder) / f"{name}.png", size)) for title, folder in LABEL_PANELS]
    panels = [(f"image {name}", image)] + ([("ground truth", colour_labels(gt))] if gt is not None else [])
    panels += [(CAM_TITLE, None if cam is None else cam_overlay(image, cam))]
    panels += [(title, None if labels is None else colour_labels(labels)) for title, labels in stages]
    panels = [(title if picture is not None else f"{title} (missing)", picture) for title, picture in panels]
    maps = ([gt] if gt is not None else []) + [labels for _, labels in stages if labels is not None]
    shown = np.unique(np.concatenate([m.ravel() for m in maps])) if maps else np.zeros(0, np.uint8)
    return panels, shown.tolist()


def chosen_names(cfg, listed):
    """The images to draw: ``--names``, else the first ``--num_images`` of the list."""
    return list(cfg.names) if cfg.names else listed[:cfg.num_images]


def check_inputs(data, names):
    """Every drawn image and its ground truth (if the data set has any) must exist; the error
    names the missing files."""
    paths = [data.image_path(n) for n in names] + ([data.gt_path(n) for n in names] if data.has_ground_truth else [])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"{len(missing)} input files not found in {data.root}: {shown}")


def run(cfg):
    """Writes the panels and the class IoU chart."""
    pyplot()  # fail at once when matplotlib is missing
    data, work = cfg.data_set(labels=False), WorkDir(cfg.work_dir)
    listed = read_image_list(cfg.list)
    names = chosen_names(cfg, listed)
    check_inputs(data, names)
    out = Path(cfg.out) if cfg.out else work / "visualize"
    prepare_outputs([out])
    for name in names:
        panels, shown = image_panels(cfg, data, work, name)
        plot_panel_row(out / f"{name}.png", panels, shown, data.classes, cfg.panel_px)
    rows = stage_rows(work, data, listed, cfg.cam_eval_thres) if data.has_ground_truth else []
    if rows:
        write_class_iou_csv(out / "class_iou.csv", rows, data.classes)
        plot_class_iou(out / "class_iou.png", rows, f"Per-class IoU on {len(listed)} images ({cfg.list})", data.classes)
    stages = [stage for stage, _ in rows]
    if not cfg.quiet:
        print(f"visualize: {len(names)} images drawn in {out}")
        print(f"visualize: class IoU of {', '.join(stages)} in {out / 'class_iou.png'}" if stages else
              f"visualize: no stage made for every image of {cfg.list}, so no class IoU chart")


def main(argv=None):
    return tool_main(run, VisualizeConfig, argv, __doc__, prog="visualize.py", profiles=PROFILES)


if __name__ == "__main__":
    sys.exit(main())

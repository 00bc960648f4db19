"""Pictures of the results: label maps in the VOC colours, CAM heat maps, the confusion matrix,
per-class IoU bars and the row of panels ``GCN/visualize.py`` draws for one image.

matplotlib is imported only inside the functions that draw (with the Agg backend, no display
needed), so importing this module, ``wsgcn.seg.metrics`` or ``eval.py`` does not require it.
Every picture is written atomically (:func:`wsgcn.infra.io.atomic_path`).
"""
import math

import numpy as np

from wsgcn.infra.io import atomic_path, voc_colormap
from wsgcn.seg.dataset import IGNORE_INDEX
from wsgcn.seg.metrics import class_iou_table, mean_iou

DPI = 100
# The row of panels, in pixels: each panel is a cell PANEL_PX wide holding the picture with
# a margin of PANEL_GAP_PX on every side; titles sit in a strip TITLE_PX high above the cells
# and the legend in rows of LEGEND_ROW_PX below them.
PANEL_PX = 200
PANEL_GAP_PX = 4
TITLE_PX = 24
LEGEND_ROW_PX = 22
MISSING_GREY = 0.8  # fill of a panel whose file does not exist

# The VOC palette with the ignore label (255) shown white instead of VOC's cream.
LABEL_COLOURS = voc_colormap()
LABEL_COLOURS[IGNORE_INDEX] = (255, 255, 255)


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("drawing pictures needs matplotlib: pip install 'matplotlib>=3.7,<4'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def label_name(label, class_names):
    """Legend text of a label value: its class name, ``ignore`` for 255, else the number."""
    label = int(label)
    if label < len(class_names):
        return class_names[label]
    return "ignore" if label == IGNORE_INDEX else str(label)


def colour_labels(label_map):
    """(H, W) uint8 label map -> (H, W, 3) uint8 RGB in the VOC colours, 255 white."""
    return LABEL_COLOURS[np.asarray(label_map, np.uint8)]


def cam_overlay(image, cam, weight=0.5):
    """(H, W, 3) uint8 image with the (H, W) CAM (0..1, clipped) blended over it as a jet heat map."""
    heat = pyplot().colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3]
    return np.round((1 - weight) * image + weight * 255 * heat).astype(np.uint8)


def save_figure(fig, path, **savefig_args):
    """Write ``fig`` as a PNG at ``path`` atomically, then close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", **savefig_args)
    finally:
        pyplot().close(fig)


def _figure_px(width_px, height_px):
    """A figure of exactly width_px x height_px pixels at DPI.

    Agg truncates figsize * dpi to whole pixels; a quarter-pixel more keeps float rounding
    from losing one.
    """
    return pyplot().figure(figsize=((width_px + 0.25) / DPI, (height_px + 0.25) / DPI), dpi=DPI)


def legend_rows(num_entries, num_panels):
    """Rows the legend takes below a row of ``num_panels`` panels (one entry per panel width)."""
    return math.ceil(num_entries / num_panels) if num_entries else 0


def panel_row_size(image_size, num_panels, num_legend_entries, panel_px=PANEL_PX):
    """(width, height) in pixels of :func:`plot_panel_row`'s picture for an (H, W) image."""
    inner_w = panel_px - 2 * PANEL_GAP_PX
    inner_h = max(1, round(inner_w * image_size[0] / image_size[1]))
    height = TITLE_PX + inner_h + 2 * PANEL_GAP_PX + LEGEND_ROW_PX * legend_rows(num_legend_entries, num_panels)
    return num_panels * panel_px, height


def plot_panel_row(path, panels, legend_labels, class_names, panel_px=PANEL_PX):
    """One row of titled panels side by side, with a legend of label colours below; writes ``path``.

    panels: list of (title, picture): an (H, W, 3) uint8 RGB picture, all of one size, or
        ``None`` for a missing one, drawn grey.
    legend_labels: label values (class indices, 255 = ignore) to list with their colour swatch,
        named from ``class_names``.
    The picture's size is :func:`panel_row_size`.
    """
    from matplotlib.patches import Patch

    size = next((p.shape[:2] for _, p in panels if p is not None), (panel_px, panel_px))
    width, height = panel_row_size(size, len(panels), len(legend_labels), panel_px)
    inner_w = panel_px - 2 * PANEL_GAP_PX
    inner_h = height - TITLE_PX - 2 * PANEL_GAP_PX - LEGEND_ROW_PX * legend_rows(len(legend_labels), len(panels))
    bottom = height - TITLE_PX - PANEL_GAP_PX - inner_h
    fig = _figure_px(width, height)
    for i, (title, picture) in enumerate(panels):
        rect = ((i * panel_px + PANEL_GAP_PX) / width, bottom / height, inner_w / width, inner_h / height)
        ax = fig.add_axes(rect)
        if picture is None:
            ax.imshow(np.full((2, 2), MISSING_GREY), cmap="gray", vmin=0, vmax=1, aspect="auto")
        else:
            ax.imshow(picture, interpolation="nearest", aspect="auto")
        ax.set_title(title, fontsize=9, pad=3)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a thin frame, so that white (ignore) edges stay visible
            spine.set(color="0.6", linewidth=0.6)
    if legend_labels:
        handles = [Patch(facecolor=LABEL_COLOURS[int(v)] / 255, edgecolor="black", linewidth=0.5,
                         label=label_name(v, class_names)) for v in legend_labels]
        strip = (height - TITLE_PX - inner_h - 2 * PANEL_GAP_PX) / height
        fig.legend(handles=handles, loc="center", bbox_to_anchor=(0, 0, 1, strip), frameon=False,
                   ncol=min(len(handles), len(panels)), fontsize=9, handlelength=1.5, borderpad=0.2,
                   labelspacing=0.3)
    save_figure(fig, path, dpi=DPI)


def plot_confusion(path, conf, title, class_names):
    """The row-normalised confusion matrix as a heat map; writes ``path``.

    conf: (C, C) pixel counts, rows = ground truth, columns = prediction.  Each cell shows the
    percentage of its row's pixels; rows without ground-truth pixels are grey.  The title is
    ``title`` followed by the mIoU.
    """
    plt = pyplot()
    conf = np.asarray(conf, np.float64)
    totals = conf.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(totals > 0, 100 * conf / totals, np.nan)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(0.45 * n + 2.5, 0.45 * n + 1.5), dpi=DPI)
    cmap = plt.colormaps["Blues"].with_extremes(bad=(0.85, 0.85, 0.85))
    image = ax.imshow(np.ma.masked_invalid(percent), cmap=cmap, vmin=0, vmax=100)
    rows, cols = np.nonzero(conf > 0)
    for r, c in zip(rows, cols):  # one text per nonzero cell (at most C * C), not per pixel
        value = percent[r, c]
        ax.text(c, r, f"{value:.0f}" if value >= 0.5 else "<1", ha="center", va="center", fontsize=7,
                color="white" if value > 60 else "black")
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(f"{title}: mIoU {100 * mean_iou(conf):.2f} % (row-normalised, %)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="% of the row's pixels")
    fig.tight_layout()
    save_figure(fig, path, dpi=DPI)


def plot_class_iou(path, rows, title, class_names):
    """Grouped bars of per-class IoU (%) and the mIoU, one bar per stage; writes ``path``.

    rows: list of (stage, (C, C) confusion matrix).  Classes absent from the ground truth and
    from every stage's prediction (IoU NaN everywhere) are left out of the chart.
    """
    plt = pyplot()
    iou = 100 * class_iou_table(rows)  # (S, C + 1)
    shown = np.flatnonzero(~np.isnan(iou).all(0))
    groups = [(list(class_names) + ["mIoU"])[i] for i in shown]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(groups) * max(len(rows), 2) / 2 + 2), 4.2), dpi=DPI)
    width = 0.8 / len(rows)
    for s, (stage, _) in enumerate(rows):
        x = np.arange(len(groups)) + (s - (len(rows) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(iou[s, shown]), width, label=f"{stage} ({iou[s, -1]:.2f})")
    ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=9)
    ax.axvline(len(groups) - 1.5, color="grey", linewidth=0.8, linestyle=":")  # classes | mIoU
    ax.set_ylim(0, 100)
    ax.set_ylabel("IoU (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", linewidth=0.4, alpha=0.6)
    ax.set_axisbelow(True)
    ax.legend(title="labels (mIoU)", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save_figure(fig, path, dpi=DPI)

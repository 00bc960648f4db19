"""One image's inputs to the GCN stage, read from the work directory (see wsgcn/layout.py)."""
from dataclasses import dataclass
import numpy as np
from PIL import Image

from wsgcn.io import load_label_png, load_npz
from wsgcn.layout import strided_size
from wsgcn.scores import find_score_file, load_cams
from wsgcn.voc import IGNORE_INDEX, NUM_CLASSES, NUM_OBJECT_CLASSES


def grid_image(image, grid):
    """The (H, W, 3) uint8 image resized to the (h, w) grid with a Lanczos filter, as WSGCN does."""
    return np.asarray(Image.fromarray(image).resize((grid[1], grid[0]), Image.LANCZOS))


def grid_cams(cam_file, allow_pickle=False, image_size=None):
    """(20, h, w) float32 CAMs on the grid with zeros for absent classes, and the classes (K,)."""
    cams = load_cams(cam_file, allow_pickle, image_size)
    full = np.zeros((NUM_OBJECT_CLASSES,) + cams["cam"].shape[1:], np.float32)
    full[cams["classes"]] = cams["cam"]
    return full, cams["classes"]


@dataclass
class GCNInputs:
    """name; image (H, W, 3) uint8; grid_image (h, w, 3) uint8; features (160, h, w) float32;
    boundary (h, w) float32; partial_labels (h, w) uint8 (255 = unlabelled); classes (K,) the
    image's object-class indices."""
    name: str
    image: np.ndarray
    grid_image: np.ndarray
    features: np.ndarray
    boundary: np.ndarray
    partial_labels: np.ndarray
    classes: np.ndarray


def load_gcn_inputs(work, voc, name, allow_pickle=False):
    image = voc.load_image(name)
    grid = strided_size(image.shape[:2], 4)
    features = load_npz(work.features / f"{name}.npz", required=("features",))["features"].astype(np.float32)
    boundary = load_npz(work.boundary / f"{name}.npz", required=("boundary",))["boundary"].astype(np.float32)
    partial = load_label_png(work.partial_labels / f"{name}.png")
    for what, shape in (("features", features.shape[1:]), ("boundary", boundary.shape), ("partial labels", partial.shape)):
        if tuple(shape) != grid:
            raise ValueError(f"{name}: {what} of size {tuple(shape)} do not fit the {grid} grid of the "
                             f"{image.shape[0]}x{image.shape[1]} image")
    for folder, array in ((work.features, features), (work.boundary, boundary)):
        if not np.isfinite(array).all():
            raise ValueError(f"{folder / name}.npz: NaN or Inf")
    bad = np.setdiff1d(partial, np.append(np.arange(NUM_CLASSES), IGNORE_INDEX))
    if bad.size:  # on a GPU such a label would reach a gather as an out-of-range index
        raise ValueError(f"{work.partial_labels / name}.png: label values {bad.tolist()} are neither a class "
                         f"(0..{NUM_CLASSES - 1}) nor unlabelled ({IGNORE_INDEX})")
    classes = load_cams(find_score_file(work.cam, name, allow_pickle), allow_pickle, image.shape[:2])["classes"]
    return GCNInputs(name, image, grid_image(image, grid), features, boundary, partial, classes)

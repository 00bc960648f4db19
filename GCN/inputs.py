"""One image's inputs to the GCN stage, read from the work directory (see wsgcn/infra/layout.py)."""
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wsgcn.infra.io import load_label_png, load_npz
from wsgcn.infra.layout import strided_size
from wsgcn.seg.dataset import IGNORE_INDEX
from wsgcn.seg.scores import as_numbers, find_score_file, load_cams

# Channels of the node features make_sem_seg writes (IRNet's concatenated boundary channels):
# the images of a batch share one feature matrix, so each image's must have them all.
FEATURE_CHANNELS = 160


def grid_image(image, grid):
    """The (H, W, 3) uint8 image resized to the (h, w) grid with a Lanczos filter, as WSGCN does."""
    return np.asarray(Image.fromarray(image).resize((grid[1], grid[0]), Image.LANCZOS))


def grid_cams(cam_file, num_object_classes, allow_pickle=False, image_size=None):
    """(C-1, h, w) float32 CAMs on the grid, one plane per object class with zeros for the absent
    ones, and the classes (K,)."""
    cams = load_cams(cam_file, num_object_classes, allow_pickle, image_size)
    full = np.zeros((num_object_classes,) + cams["cam"].shape[1:], np.float32)
    full[cams["classes"]] = cams["cam"]
    return full, cams["classes"]


@dataclass
class GCNInputs:
    """name; image (H, W, 3) uint8; grid_image (h, w, 3) uint8; features (160, h, w) float32;
    boundary (h, w) float32; partial_labels (h, w) uint8 (255 = unlabelled); classes (K,) the
    image's object-class indices; num_classes: the data set's C, background included (the GCN's
    outputs)."""
    name: str
    image: np.ndarray
    grid_image: np.ndarray
    features: np.ndarray
    boundary: np.ndarray
    partial_labels: np.ndarray
    classes: np.ndarray
    num_classes: int


def load_gcn_inputs(work, data, name, allow_pickle=False):
    """Read one image's inputs, each checked against the image's stride-4 grid where it is read: a
    file of the wrong shape or with values out of range fails the image with an error naming it,
    not later as a shape mismatch or an out-of-range index inside torch."""
    image = data.load_image(name)
    grid = strided_size(image.shape[:2], 4)
    features = read_grid_array(work.features / f"{name}.npz", "features", (FEATURE_CHANNELS,) + grid, image)
    boundary = read_grid_array(work.boundary / f"{name}.npz", "boundary", grid, image)
    partial = load_label_png(work.partial_labels / f"{name}.png")
    if partial.shape != grid:
        raise ValueError(f"{work.partial_labels / name}.png: partial labels of size {partial.shape} do not fit the "
                         f"{grid} grid of the {image.shape[0]}x{image.shape[1]} image")
    bad = np.setdiff1d(partial, np.append(np.arange(data.num_classes), IGNORE_INDEX))
    if bad.size:  # on a GPU such a label would reach a gather as an out-of-range index
        raise ValueError(f"{work.partial_labels / name}.png: label values {bad.tolist()} are neither a class "
                         f"(0..{data.num_classes - 1}) nor unlabelled ({IGNORE_INDEX})")
    cam_file = find_score_file(work.cam, name, allow_pickle)
    classes = load_cams(cam_file, data.num_object_classes, allow_pickle, image.shape[:2])["classes"]
    return GCNInputs(name, image, grid_image(image, grid), features, boundary, partial, classes, data.num_classes)


def read_grid_array(path, key, shape, image):
    """The array ``key`` of the archive ``path`` as float32, checked to have ``shape`` (the grid
    of ``image``, with channels first) and finite values."""
    array = as_numbers(path, load_npz(path, required=(key,))[key], np.float32)
    if array.shape != shape:
        raise ValueError(f"{path}: {key} has shape {array.shape}; the {image.shape[0]}x{image.shape[1]} image "
                         f"needs {shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: NaN or Inf")
    return array

"""One image's inputs to the GCN stage, read from the work directory (see wsgcn/layout.py)."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsgcn.cams import find_cam_file, load_cams, strided_size
from wsgcn.io import load_label_png, load_npz
from wsgcn.voc import NUM_OBJECT_CLASSES


def grid_image(image, grid):
    """The (H, W, 3) uint8 image resized to the (h, w) grid with a Lanczos filter, as WSGCN does."""
    return np.asarray(Image.fromarray(image).resize((grid[1], grid[0]), Image.LANCZOS))


def grid_cams(cam_file, allow_pickle=False, image_size=None):
    """(20, h, w) float32 CAMs on the grid with zeros for absent classes, and the keys (K,)."""
    cams = load_cams(cam_file, allow_pickle, image_size)
    full = np.zeros((NUM_OBJECT_CLASSES,) + cams["cam"].shape[1:], np.float32)
    full[cams["keys"]] = cams["cam"]
    return full, cams["keys"]


@dataclass
class GCNInputs:
    """name; image (H, W, 3) uint8; grid_image (h, w, 3) uint8; features (160, h, w) float32;
    boundary (h, w) float32; partial_labels (h, w) uint8 (255 = unlabelled); keys (K,) classes."""
    name: str
    image: np.ndarray
    grid_image: np.ndarray
    features: np.ndarray
    boundary: np.ndarray
    partial_labels: np.ndarray
    keys: np.ndarray


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
    keys = load_cams(find_cam_file(work.cam, name, allow_pickle), allow_pickle, image.shape[:2])["keys"]
    return GCNInputs(name, image, grid_image(image, grid), features, boundary, partial, keys)


def load_logits(path, allow_pickle=False, image_size=None):
    """A GCN or CRF score file: (keys (K,) int64 label indices, background first; prob (K, H, W) float32).

    ``<name>.npz`` with ``keys`` and ``prob``; WSGCN's pickled ``.npy`` dict {label: (H, W)} is read
    only with ``allow_pickle``.  Sizes are checked against ``image_size``; NaN/Inf is an error.
    """
    path = Path(path)
    if path.suffix == ".npz" and not path.is_file() and path.with_suffix(".npy").is_file():
        path = path.with_suffix(".npy")  # only the legacy file exists: say why it is not read
    if path.suffix == ".npy":
        if not allow_pickle:
            raise ValueError(f"{path}: a .npy score file is a pickled dict; pass --allow_pickle to trust it")
        table = np.load(path, allow_pickle=True).item()
        keys = np.array(sorted(table), np.int64)
        prob = np.stack([np.asarray(table[k], np.float32) for k in keys])
    else:
        data = load_npz(path, required=("keys", "prob"))
        keys, prob = data["keys"].astype(np.int64).reshape(-1), data["prob"].astype(np.float32)
    if prob.ndim != 3 or len(prob) != len(keys):
        raise ValueError(f"{path}: {len(keys)} keys but prob of shape {prob.shape}")
    if image_size is not None and prob.shape[1:] != tuple(image_size):
        raise ValueError(f"{path}: scores of size {prob.shape[1:]} do not fit the {image_size[0]}x{image_size[1]} image")
    if not np.isfinite(prob).all():
        raise ValueError(f"{path}: scores hold NaN or Inf")
    return keys, prob


def find_logit_file(folder, name, allow_pickle=False):
    """``<folder>/<name>.npz``, or WSGCN's ``.npy`` when pickle is allowed and no npz exists."""
    npz, npy = Path(folder) / f"{name}.npz", Path(folder) / f"{name}.npy"
    return npy if (not npz.is_file() and allow_pickle and npy.is_file()) else npz

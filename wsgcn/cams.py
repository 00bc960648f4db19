"""CAM archives (``IRN4GCN/CAM/<name>.npz``) and the grid arithmetic around them."""
from pathlib import Path

import numpy as np

from wsgcn.io import load_npz


def strided_size(size, stride):
    """(ceil(H / stride), ceil(W / stride)): the feature grid of an H x W image."""
    return (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1


def load_cams(path, allow_pickle=False, image_size=None):
    """Read a CAM file: dict with ``keys`` (K,) int64, ``cam`` (K, h, w), ``high_res`` (K, H, W) float32.

    ``path`` is the ``.npz`` archive; a legacy IRNet ``.npy`` dict (pickled) is read only with
    ``allow_pickle``.  With ``image_size`` (H, W), the maps' sizes are checked against it.
    Non-finite values are an error.
    """
    path = Path(path)
    if path.suffix == ".npy":
        if not allow_pickle:
            raise ValueError(f"{path}: a .npy CAM file is a pickled dict; pass --allow_pickle to trust it")
        raw = np.load(path, allow_pickle=True).item()
        data = {k: np.asarray(raw[k].cpu() if hasattr(raw[k], "cpu") else raw[k]) for k in ("keys", "cam", "high_res")}
    else:
        data = load_npz(path, required=("keys", "cam", "high_res"))
    keys = data["keys"].astype(np.int64).reshape(-1)
    cam, high_res = data["cam"].astype(np.float32), data["high_res"].astype(np.float32)
    if cam.ndim != 3 or high_res.ndim != 3 or len(cam) != len(keys) or len(high_res) != len(keys):
        raise ValueError(f"{path}: {len(keys)} keys but cam {cam.shape} and high_res {high_res.shape}")
    if image_size is not None:
        if high_res.shape[1:] != tuple(image_size) or cam.shape[1:] != strided_size(image_size, 4):
            raise ValueError(f"{path}: maps of size {high_res.shape[1:]} / {cam.shape[1:]} do not fit the "
                             f"{image_size[0]}x{image_size[1]} image")
    if not (np.isfinite(cam).all() and np.isfinite(high_res).all()):
        raise ValueError(f"{path}: CAM holds NaN or Inf")
    return {"keys": keys, "cam": cam, "high_res": high_res}


def find_cam_file(cam_dir, name, allow_pickle=False):
    """``<cam_dir>/<name>.npz``, or the legacy ``.npy`` when pickle is allowed and no npz exists."""
    npz = Path(cam_dir) / f"{name}.npz"
    npy = Path(cam_dir) / f"{name}.npy"
    if not npz.is_file() and allow_pickle and npy.is_file():
        return npy
    return npz


def cam_label_map(high_res, keys, bg_score):
    """(H, W) uint8 labels: argmax over [constant background plane ``bg_score``, class maps],
    mapped to VOC indices (0 = background, key + 1 otherwise)."""
    scores = np.concatenate([np.full((1,) + high_res.shape[1:], bg_score, np.float32), high_res])
    labels = np.concatenate([[0], keys + 1])
    return labels[scores.argmax(0)].astype(np.uint8)

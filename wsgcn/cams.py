"""CAM archives (``IRN4GCN/CAM/<name>.npz``) and the grid arithmetic around them."""
from pathlib import Path

import numpy as np

from wsgcn.io import load_npz
from wsgcn.metrics import confusion_matrix


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
    if path.suffix == ".npz" and not path.is_file() and path.with_suffix(".npy").is_file():
        path = path.with_suffix(".npy")  # only the legacy file exists: say why it is not read
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


def key_labels(keys):
    """VOC label of each plane of [background, CAMs of ``keys``]: (K+1,) int64, 0 then key + 1."""
    return np.concatenate([[0], np.asarray(keys, np.int64) + 1])


def cam_argmax(high_res, bg_score):
    """(H, W) plane index of the argmax over [constant background plane ``bg_score``, class maps]."""
    scores = np.concatenate([np.full((1,) + high_res.shape[1:], bg_score, np.float32), high_res])
    return scores.argmax(0)


def cam_label_map(high_res, keys, bg_score):
    """(H, W) uint8 VOC labels of the CAMs with background score ``bg_score``."""
    return key_labels(keys)[cam_argmax(high_res, bg_score)].astype(np.uint8)


def cam_confusion(cam_dir, voc, names, bg_score, allow_pickle=False):
    """21-class confusion matrix of the CAM label maps (:func:`cam_label_map`) against the truth."""
    conf = 0
    for name in names:
        gt = voc.load_gt(name)
        cams = load_cams(find_cam_file(cam_dir, name, allow_pickle), allow_pickle, gt.shape)
        conf = conf + confusion_matrix(gt, cam_label_map(cams["high_res"], cams["keys"], bg_score))
    return np.asarray(conf)

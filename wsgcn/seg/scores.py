"""Score archives, the one reader of each kind: CAMs and GCN/CRF probabilities.

    IRN4GCN/CAM/<name>.npz             keys (K,) object-class indices 0..C-2, cam (K, h, w),
                                       high_res (K, H, W) float32            -> load_cams
    GCN4DeepLab/{Logit,CRF_Logit}/...  keys (K,) label indices 0..C-1, background (0) first,
                                       prob (K, H, W) float32                -> load_probs

The archives call both index vectors ``keys`` (the original's name, kept for compatibility);
in code they are ``classes`` (object classes, 0 = VOC's aeroplane) and ``labels`` (label-map
values, 0 = background); C is the data set's number of classes, background included.  The
original writes both as pickled ``.npy`` dicts; those are read only with ``allow_pickle``
(unpickling runs code from the file), and only when no ``.npz`` exists.
"""
from pathlib import Path

import numpy as np

from wsgcn.infra.io import load_npz
from wsgcn.infra.layout import strided_size


def find_score_file(folder, name, allow_pickle=False):
    """``<folder>/<name>.npz``, or the original's ``.npy`` when pickle is allowed and no npz exists."""
    npz, npy = Path(folder) / f"{name}.npz", Path(folder) / f"{name}.npy"
    return npy if (not npz.is_file() and allow_pickle and npy.is_file()) else npz


def read_archive(path, allow_pickle=False, required=(), what="score"):
    """(path read, its arrays as a dict): an npz by name (``required`` names checked), or the
    pickled dict of a legacy ``.npy``, its torch tensors (IRNet saves ``keys`` and ``cam`` so)
    turned into numpy arrays."""
    path = Path(path)
    if path.suffix == ".npz" and not path.is_file() and path.with_suffix(".npy").is_file():
        path = path.with_suffix(".npy")  # only the legacy file exists: say why it is not read
    if path.suffix != ".npy":
        return path, load_npz(path, required=required)
    if not allow_pickle:
        raise ValueError(f"{path}: a .npy {what} file is a pickled dict; pass --allow_pickle True to trust it")
    try:
        raw = np.load(path, allow_pickle=True).item()
    except Exception as e:  # whatever unpickling a damaged or foreign file raises is about the file
        raise ValueError(f"{path}: unreadable pickled {what} file ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of arrays, got {type(raw).__name__}")
    return path, {key: value.cpu().numpy() if hasattr(value, "cpu") else value for key, value in raw.items()}


def _check_finite(path, what, *arrays):
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(f"{path}: {what} NaN or Inf")


def as_numbers(path, array, dtype):
    """``array`` as ``dtype``; an array that is not numbers (strings, say) is an error naming the file."""
    try:
        return np.asarray(array).astype(dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: not an array of numbers ({e})") from None


def _check_indices(path, indices, count, what):
    """Each index in 0..count-1, none twice: an index out of range would later index out of bounds."""
    if ((indices < 0) | (indices >= count)).any() or len(np.unique(indices)) != len(indices):
        raise ValueError(f"{path}: keys {indices.tolist()} are not distinct {what} (0..{count - 1})")


def load_cams(path, num_object_classes, allow_pickle=False, image_size=None):
    """A CAM archive: dict with ``classes`` (K,) int64 object-class indices (each below
    ``num_object_classes``), ``cam`` (K, h, w)
    on the stride-4 grid and ``high_res`` (K, H, W), float32.

    With ``image_size`` (H, W) the maps' sizes are checked against it; NaN/Inf is an error.
    """
    path, raw = read_archive(path, allow_pickle, ("keys", "cam", "high_res"), "CAM")
    classes = as_numbers(path, raw["keys"], np.int64).reshape(-1)
    cam, high_res = as_numbers(path, raw["cam"], np.float32), as_numbers(path, raw["high_res"], np.float32)
    if cam.ndim != 3 or high_res.ndim != 3 or len(cam) != len(classes) or len(high_res) != len(classes):
        raise ValueError(f"{path}: {len(classes)} keys but cam {cam.shape} and high_res {high_res.shape}")
    _check_indices(path, classes, num_object_classes, "object classes")
    if image_size is not None:
        if high_res.shape[1:] != tuple(image_size) or cam.shape[1:] != strided_size(image_size, 4):
            raise ValueError(f"{path}: maps of size {high_res.shape[1:]} / {cam.shape[1:]} do not fit the "
                             f"{image_size[0]}x{image_size[1]} image")
    _check_finite(path, "CAM holds", cam, high_res)
    return {"classes": classes, "cam": cam, "high_res": high_res}


def load_probs(path, num_classes, allow_pickle=False, image_size=None):
    """A GCN or CRF score archive: (labels (K,) int64 label indices below ``num_classes``,
    background first;
    prob (K, H, W) float32).  WSGCN's legacy ``.npy`` is a dict {label: (H, W) map}.

    Sizes are checked against ``image_size``; NaN/Inf is an error.
    """
    path, raw = read_archive(path, allow_pickle, ("keys", "prob"), "score")
    if path.suffix == ".npy":
        labels = as_numbers(path, list(raw), np.int64)
        maps = [as_numbers(path, raw[k], np.float32) for k in raw]
        if not maps or len({m.shape for m in maps}) > 1:
            raise ValueError(f"{path}: score maps of shapes {[m.shape for m in maps]}, expected one (H, W) per label")
        order = np.argsort(labels, kind="stable")
        labels, prob = labels[order], np.stack(maps)[order]
    else:
        labels, prob = as_numbers(path, raw["keys"], np.int64).reshape(-1), as_numbers(path, raw["prob"], np.float32)
    if prob.ndim != 3 or len(prob) != len(labels):
        raise ValueError(f"{path}: {len(labels)} keys but prob of shape {prob.shape}")
    _check_indices(path, labels, num_classes, "labels")
    if image_size is not None and prob.shape[1:] != tuple(image_size):
        raise ValueError(f"{path}: scores of size {prob.shape[1:]} do not fit the {image_size[0]}x{image_size[1]} image")
    _check_finite(path, "scores hold", prob)
    return labels, prob

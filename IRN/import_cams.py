r"""Bring CAMs made by another method (IRNet, ReCAM, AMN, AdvCAM, CLIMS, ...) into this project.

    python IRN/import_cams.py --src DIR --work_dir Data --voc12_root Data/VOC12/VOC2012 \
        --list Data/VOC12/train_aug.txt [--allow_pickle True]

Reads ``DIR/<name>.npy`` (IRNet's pickled dict: ``keys`` object-class indices 0..C-2, ``cam``,
``high_res``; read only with ``--allow_pickle True``) or ``DIR/<name>.npz`` (the same names, or
others given by ``--keys_key``/``--cam_key``/``--high_res_key``), or either as a dict
``{class_index: (H, W) map}`` with no key array (MCTformer, WeakTr, CTI), checks each against the
data set and writes ``IRN4GCN/CAM/<name>.npz`` as make_cam does: ``keys`` (K,) int64, ``cam``
(K, h, w) on the stride-4 grid and ``high_res`` (K, H, W), float32, each class map divided by its
maximum (+1e-5) if it is not already.  Then the rest of Stage I runs on them unchanged
(``CAM_DIR=DIR bash train.sh``).

An image whose maps do not have its size, whose keys are not its classes, or whose scores are
not finite fails alone (``IRN4GCN/CAM/failures.txt``, exit status 1).  Without ``cam`` it is
derived from ``high_res`` (:func:`strided_cam`).
"""
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsgcn.infra.config import CommonConfig, field
from wsgcn.infra.io import prepare_outputs, save_npz
from wsgcn.infra.layout import WorkDir, strided_size
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.scripts import script_main
from wsgcn.seg.dataset import DataConfig, read_image_list
from wsgcn.seg.scores import as_numbers, read_archive


@dataclass(frozen=True)
class ImportCamsConfig(CommonConfig, DataConfig):
    src: str = field("", "folder of per-image CAM files <name>.npy (IRNet's pickled dicts) or <name>.npz")
    list: str = field("Data/VOC12/train_aug.txt", "images to import")
    keys_key: str = field("keys", "name of the class-index array in the files")
    cam_key: str = field("cam", "name of the stride-4 maps ('' or absent: derived from the full-size maps)")
    high_res_key: str = field("high_res", "name of the full-size maps (K, H, W)")
    keys_include_background: bool = field(False, "the keys are VOC labels (0 = background, c + 1 = class c) and "
                                                 "the maps have a plane for the background, which is dropped")


def strided_cam(high_res):
    """The stride-4 ``cam`` (K, ceil(H/4), ceil(W/4)) IRNet's make_cam would have made along with
    these full-size maps (K, H, W), max-normalised.

    make_cam resizes each scale's stride-16 map bilinearly to the stride-4 grid for ``cam``, and
    by exactly 16 (then crops to H x W) for ``high_res``.  Both are linear in the maps, so ``cam``
    is ``high_res`` extended to the multiple of 16 it was cropped from (edge rows and columns
    repeated: the cropped part is lost) and resized bilinearly to the stride-4 grid.  On the
    demo's own CAMs this gives make_cam's ``cam`` to a mean |Δ| of 0.0017 (99.6 % of the CAM
    labels equal); the differences sit at the bottom and right borders.
    """
    k, height, width = high_res.shape
    grid = strided_size((height, width), 4)
    up = tuple(s * 16 for s in strided_size((height, width), 16))
    maps = torch.from_numpy(np.ascontiguousarray(high_res, np.float64))[None]
    maps = F.pad(maps, (0, up[1] - width, 0, up[0] - height), mode="replicate")
    cam = F.interpolate(maps, size=grid, mode="bilinear", align_corners=False)[0]
    return normalised(cam.numpy())


def normalised(maps):
    """(K, h, w) float32 maps as make_cam leaves them: unchanged if they already are (in 0..1,
    each class's maximum 1 within 1e-3), else rectified and divided by each class's maximum + 1e-5."""
    maps = np.asarray(maps, np.float64)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    if maps.min() >= 0 and np.allclose(peaks, 1, atol=1e-3):
        return maps.astype(np.float32)
    maps = np.maximum(maps, 0)
    return (maps / (maps.max(axis=(1, 2), keepdims=True) + 1e-5)).astype(np.float32)


def class_indexed_maps(raw):
    """The other common layout, ``{class_index: (H, W) map}`` with no key array (MCTformer, WeakTr
    and CTI save their CAMs so; an npz stores the indices as names "0", "14", ...): (keys (K,),
    maps (K, H, W)) in increasing class order, or None when ``raw`` is not of that layout."""
    try:
        indices = {int(str(key)): key for key in raw}
    except ValueError:
        return None
    if not indices or any(np.ndim(raw[key]) != 2 for key in indices.values()):
        return None
    keys = np.array(sorted(indices), np.int64)
    return keys, [raw[indices[k]] for k in keys]


def read_cam_file(path, cfg):
    """The arrays of one CAM file that ``cfg`` names: keys (K,) int64, the full-size maps and the
    stride-4 maps (None when the file has none) as float32, each maps array of 3 dimensions.  A
    file of the class-indexed layout (:func:`class_indexed_maps`) gives its maps as the full-size ones."""
    _, raw = read_archive(path, cfg.allow_pickle, what="CAM")
    if cfg.keys_key not in raw:
        indexed = class_indexed_maps(raw)
        if indexed is not None:
            keys, maps = indexed
            shapes = {np.shape(m) for m in maps}
            if len(shapes) > 1:
                raise ValueError(f"{path}: class maps of shapes {sorted(shapes)}, expected one (H, W)")
            return keys, as_numbers(path, np.stack(maps), np.float32), None
    missing = [key for key in (cfg.keys_key, cfg.high_res_key) if key not in raw]
    if missing:
        raise ValueError(f"{path}: no {missing} among its arrays {sorted(raw)} (see --keys_key/--high_res_key)")
    keys = as_numbers(path, raw[cfg.keys_key], np.int64).reshape(-1)
    high_res = as_numbers(path, raw[cfg.high_res_key], np.float32)
    cam = as_numbers(path, raw[cfg.cam_key], np.float32) if cfg.cam_key and cfg.cam_key in raw else None
    for key, maps in ((cfg.high_res_key, high_res), (cfg.cam_key, cam)):
        if maps is not None and maps.ndim != 3:
            raise ValueError(f"{path}: {key} has shape {maps.shape}, not (classes, height, width)")
    return keys, high_res, cam


def import_cam(cfg, data, work, name):
    """Check one image's CAM file against the image and write it as make_cam would."""
    path = find_source(cfg, name)
    keys, high_res, cam = read_cam_file(path, cfg)
    if cfg.keys_include_background:
        objects = keys != 0
        keys = keys[objects] - 1
        high_res = high_res[objects] if len(high_res) == len(objects) else high_res
        cam = cam[objects] if cam is not None and len(cam) == len(objects) else cam
    with Image.open(data.image_path(name)) as image:
        size = (image.height, image.width)
    expected = np.flatnonzero(data.class_labels(name))
    if sorted(keys.tolist()) != expected.tolist():
        raise ValueError(f"{path}: keys {keys.tolist()} are not the image's classes {expected.tolist()} "
                         f"(object classes 0..{data.num_object_classes - 1}; --keys_include_background for label-map "
                         f"values)")
    if high_res.shape != (len(keys),) + size:
        raise ValueError(f"{path}: {cfg.high_res_key} is {high_res.shape}, the {size[0]}x{size[1]} image needs "
                         f"{(len(keys),) + size}")
    if cam is not None and cam.shape != (len(keys),) + strided_size(size, 4):
        raise ValueError(f"{path}: {cfg.cam_key} is {cam.shape}, the stride-4 grid needs "
                         f"{(len(keys),) + strided_size(size, 4)}")
    if not np.isfinite(high_res).all() or (cam is not None and not np.isfinite(cam).all()):
        raise ValueError(f"{path}: scores hold NaN or Inf")
    order = np.argsort(keys)  # make_cam's order: the image's classes ascending
    high_res = normalised(high_res[order])
    cam = strided_cam(high_res) if cam is None else normalised(cam[order])
    save_npz(work.cam / f"{name}.npz", keys=keys[order], cam=cam, high_res=high_res)
    return name


def find_source(cfg, name):
    src = Path(cfg.src)
    for suffix in (".npz", ".npy"):
        if (src / f"{name}{suffix}").is_file():
            return src / f"{name}{suffix}"
    raise FileNotFoundError(f"no CAM file for {name} in {src} (<name>.npy or <name>.npz)")


def run(cfg):
    src = Path(cfg.src)
    if not cfg.src or not src.is_dir():
        raise FileNotFoundError(f"--src {cfg.src!r}: not a folder of CAM files")
    # hidden files are not CAMs (e.g. the temporaries of a killed export, .<name>.<random>.part.npy)
    if not cfg.allow_pickle and any(not p.name.startswith(".") for p in src.glob("*.npy")):
        raise ValueError(f"{src} holds .npy CAM files, which are pickles: loading one runs code from it. If the "
                         f"folder is yours or trusted, pass --allow_pickle True (nothing was written)")
    data, work = cfg.data_set(), WorkDir(cfg.work_dir)
    prepare_outputs([work.cam])
    failures = Failures("import_cams", work.cam)
    names = pending_images(read_image_list(cfg.list), lambda name: [work.cam / f"{name}.npz"],
                           lambda name: [data.labels_path(name)] + [p for p in (src / f"{name}.npz", src / f"{name}.npy")
                                                                   if p.is_file()],
                           cfg.overwrite, failures)
    job = functools.partial(import_cam, cfg, data, work)
    done = sum(1 for _ in map_images(job, names, cfg.num_workers, "import_cams", cfg.quiet, failures))
    print(f"import_cams: {done} images from {src} to {work.cam}", flush=True)
    failures.finish()


def main(argv=None):
    return script_main(run, ImportCamsConfig, {"paper": {}}, argv, __doc__)


if __name__ == "__main__":
    main()

"""Stage II inputs: an RGB image as each backbone expects it, and the training crops."""
import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from DeepLab.net.deeplab_v2 import backbone_named
from wsgcn.infra.io import load_label_png
from wsgcn.seg.augment import SeededDataset, chw, crop_into
from wsgcn.seg.dataset import IGNORE_INDEX


def input_convention(cfg):
    """(channel order "BGR"|"RGB", scale, mean (3,), std (3,)) of ``cfg.backbone``'s input
    (``Backbone.input``), with the profile's or the flags' mean/std, in the backbone's convention
    (caffe: BGR 0..255; torchvision: RGB 0..1), where they are given."""
    convention = backbone_named(cfg.backbone).input
    order, scale = convention.channel_order, convention.pixel_scale
    mean, std = tuple(cfg.image_mean) or convention.mean, tuple(cfg.image_std) or convention.std
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"--image_mean/--image_std take 3 values each, got {mean} and {std}")
    return order, scale, np.asarray(mean, np.float64), np.asarray(std, np.float64)


def input_array(image, cfg):
    """(H, W, 3) RGB 0..255 (uint8, or float once rescaled) -> (H, W, 3) float32 network input:
    kazuto1011's BGR - mean (0..255) for the caffe backbone, johnnylu305's (RGB / 255 - mean) / std
    for the torchvision one."""
    order, scale, mean, std = input_convention(cfg)
    pixels = np.asarray(image, np.float64)
    if order == "BGR":
        pixels = pixels[..., ::-1]
    return ((pixels / (255.0 / scale) - mean) / std).astype(np.float32)


def resize_bilinear(image, size):
    """(H, W, C) image -> float32 (h, w, C), bilinear on pixel centres without antialiasing, as
    OpenCV's ``INTER_LINEAR`` on a float image (what both recipes rescale with)."""
    image = np.asarray(image, np.float32)
    if tuple(size) == image.shape[:2]:
        return image
    out = F.interpolate(chw(image)[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    return np.moveaxis(out[0].numpy(), 0, -1)


def resize_nearest(label, size):
    """(H, W) uint8 label map -> (h, w), PIL's nearest neighbour."""
    label = np.asarray(label)
    if tuple(size) == label.shape:
        return label
    return np.asarray(Image.fromarray(label).resize((size[1], size[0]), Image.NEAREST))


@functools.lru_cache(maxsize=256)
def _nearest_index(in_size, out_size):
    """The source index of each of ``out_size`` outputs along an axis of ``in_size`` under PIL's
    nearest-neighbour resize (separable: rows and columns are chosen independently)."""
    row = Image.fromarray(np.arange(in_size, dtype=np.int32)[None])
    return np.asarray(row.resize((out_size, 1), Image.NEAREST))[0].astype(np.int64)


def resize_labels(labels, size):
    """(B, H, W) label tensor -> (B, h, w) on its device, each map resized as PIL's nearest
    neighbour does (kazuto1011's ``resize_labels``: the targets of the smaller MSC outputs)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    rows = torch.from_numpy(_nearest_index(labels.shape[-2], size[0])).to(labels.device)
    cols = torch.from_numpy(_nearest_index(labels.shape[-1], size[1])).to(labels.device)
    return labels.index_select(-2, rows).index_select(-1, cols)


def padded_crop_box(rng, size, crop):
    """Where a crop x crop window of an (h, w) map padded bottom/right to at least crop lies:
    a random offset where the map is larger than the crop, 0 where it is not (the padding).
    Returns (canvas slices, map slices) for :func:`wsgcn.seg.augment.crop_into`."""
    canvas, source = [], []
    for extent in size:
        offset = int(rng.integers(max(extent - crop, 0) + 1))
        length = min(crop, extent)
        canvas.append(slice(0, length))
        source.append(slice(offset, offset + length))
    return tuple(canvas), tuple(source)


def check_label(label, path, image_size, num_classes):
    """A training label map must have the image's size and hold 0..C-1 or 255 only."""
    if label.shape != tuple(image_size):
        raise ValueError(f"{path}: label map is {label.shape[0]}x{label.shape[1]}, "
                         f"the image is {image_size[0]}x{image_size[1]}")
    bad = (label >= num_classes) & (label != IGNORE_INDEX)
    if bad.any():
        raise ValueError(f"{path}: label {int(label[bad][0])} is neither a class (0..{num_classes - 1}) "
                         f"nor {IGNORE_INDEX} (ignored)")
    return label


GROUND_TRUTH = "ground_truth"  # --label_dir: train on the data set's ground truth


def label_path(data, label_dir, name):
    """Image ``name``'s training label map: ``label_dir/<name>.png``, or with ``label_dir`` None
    the data set's ground truth."""
    return data.gt_path(name) if label_dir is None else Path(label_dir) / f"{name}.png"


class TrainDataset(SeededDataset):
    """Stage II training crops, as kazuto1011's ``_BaseDataset._augmentation``: the image and its
    label map rescaled by a factor drawn from ``cfg.train_scales`` to (int(H s), int(W s))
    (bilinear / nearest), normalised (:func:`input_array`), padded bottom/right to at least
    ``cfg.crop_size`` (image 0 = the mean, label 255), randomly cropped to ``cfg.crop_size`` and
    flipped with probability 1/2.  Randomness from (seed, epoch, index), see ``set_epoch``.

    ``label_dir``: the folder of the label maps ``<name>.png``, or None for the data set's
    ground truth (:func:`label_path`).
    Items: {"name", "img": (3, crop, crop) float32, "label": (crop, crop) int64}."""

    def __init__(self, data, names, label_dir, cfg, seed=0):
        super().__init__(data, names, seed)
        self.label_dir, self.cfg = label_dir, cfg
        input_convention(cfg)  # an unknown backbone or a bad mean fails here, not in a worker

    def __getitem__(self, idx):
        rng, name = self.rng(idx), self.names[idx]
        image = self.data.load_image(name)
        path = label_path(self.data, self.label_dir, name)
        label = check_label(load_label_png(path), path, image.shape[:2], self.data.num_classes)
        scale = self.cfg.train_scales[int(rng.integers(len(self.cfg.train_scales)))]
        size = int(image.shape[0] * scale), int(image.shape[1] * scale)
        if min(size) < 1:
            raise ValueError(f"{self.data.image_path(name)}: {image.shape[0]}x{image.shape[1]} at scale {scale} "
                             f"is empty")
        image = input_array(resize_bilinear(image, size), self.cfg)
        label = resize_nearest(label, size)
        crop = self.cfg.crop_size
        image, label = crop_into([image, label], [0.0, IGNORE_INDEX], crop, padded_crop_box(rng, size, crop))
        if rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return {"name": name, "img": chw(image), "label": torch.from_numpy(label.astype(np.int64))}

"""Torch datasets of the IRN steps: classification crops (train_cam), multi-scale inference
(make_cam, make_sem_seg_labels) and affinity crops (train_irn).

Augmentation is seeded by (seed, epoch, image index) (:class:`wsgcn.seg.augment.SeededDataset`):
call ``set_epoch`` before each epoch.
"""
import numpy as np
import torch
from PIL import Image

from wsgcn.infra.io import load_label_png
from wsgcn.seg.augment import SeededDataset, chw, crop_into
from wsgcn.seg.dataset import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(img):
    """(H, W, 3) RGB in 0..255 -> float32 ImageNet-normalised (H, W, 3), computed in float64
    and rounded once, as IRNet's ``TorchvisionNormalize``."""
    return ((np.asarray(img, np.float64) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def rescale(img, scale, order):
    """Rescale an (H, W[, 3]) uint8 array to (round(H*s), round(W*s)) with PIL, as IRNet's
    ``pil_rescale``: bicubic for images (``order=3``), nearest for label maps (``order=0``).
    The result stays uint8 (PIL rounds and clips it); an unchanged size returns the input.  A
    side that would round to 0 keeps 1 pixel (IRNet would fail on such an image: a 1-pixel-wide
    image at scale 0.5)."""
    if order not in (0, 3):
        raise ValueError(f"rescale: order must be 0 (nearest) or 3 (bicubic), got {order}")
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"rescale: expected a uint8 array, got {img.dtype}")
    h, w = img.shape[:2]
    if not scale > 0:
        raise ValueError(f"rescale: scale must be positive, got {scale}")
    out_h, out_w = max(1, int(np.round(h * scale))), max(1, int(np.round(w * scale)))
    if (out_h, out_w) == (h, w):
        return img
    resample = Image.BICUBIC if order == 3 else Image.NEAREST
    return np.array(Image.fromarray(img).resize((out_w, out_h), resample))


def random_crop_box(rng, size, crop):
    """Where an (h, w) image goes in a crop x crop canvas: (canvas slices, image slices)."""
    boxes = []
    for extent in size:
        space = extent - crop
        offset = int(rng.integers(abs(space) + 1))
        cont, img = (0, offset) if space > 0 else (offset, 0)
        length = min(crop, extent)
        boxes.append((slice(cont, cont + length), slice(img, img + length)))
    return (boxes[0][0], boxes[1][0]), (boxes[0][1], boxes[1][1])


def top_left_box(size, crop):
    h, w = min(size[0], crop), min(size[1], crop)
    return (slice(0, h), slice(0, w)), (slice(0, h), slice(0, w))


class ClassificationDataset(SeededDataset):
    """train_cam's crops: long side resized to a random value in ``resize_long`` (bicubic),
    random horizontal flip, random ``crop_size`` square crop, zero padded."""

    def __init__(self, data, names, crop_size=512, resize_long=(320, 640), seed=0):
        super().__init__(data, names, seed)
        self.crop_size, self.resize_long = crop_size, resize_long

    def __getitem__(self, idx):
        rng, name = self.rng(idx), self.names[idx]
        img = self.data.load_image(name)
        target_long = int(rng.integers(self.resize_long[0], self.resize_long[1] + 1))
        img = normalize(rescale(img, target_long / max(img.shape[:2]), order=3))
        if rng.random() < 0.5:
            img = img[:, ::-1]
        (img,) = crop_into([img], [0.0], self.crop_size, random_crop_box(rng, img.shape[:2], self.crop_size))
        return {"name": name, "img": chw(img), "label": torch.from_numpy(self.data.class_labels(name))}


class MultiScaleDataset(SeededDataset):
    """Inference input: for each scale, the rescaled image and its horizontal flip, (2, 3, h, w)."""

    def __init__(self, data, names, scales=(1.0,)):
        super().__init__(data, names)
        self.scales = tuple(scales)

    def __getitem__(self, idx):
        return self.pack(self.names[idx])

    def pack(self, name):
        """One image's item by name: {"name", "img": [(2, 3, h_s, w_s) per scale], "size", "label"}."""
        img = self.data.load_image(name)
        pyramid = []
        for s in self.scales:
            scaled = normalize(rescale(img, s, order=3))
            pyramid.append(torch.stack([chw(scaled), chw(scaled[:, ::-1])]))
        return {"name": name, "img": pyramid, "size": img.shape[:2],
                "label": torch.from_numpy(self.data.class_labels(name))}


class AffinityDataset(SeededDataset):
    """train_irn's crops: image and inter-pixel relation label rescaled by a random factor in
    ``rescale`` (bicubic / nearest), flipped, randomly cropped (image 0, label 255 padding);
    the label, reduced x0.25 (nearest), gives the pair labels of ``path_index``."""

    def __init__(self, data, names, ir_label_dir, path_index, crop_size=512, rescale=(0.5, 1.5), seed=0):
        super().__init__(data, names, seed)
        self.ir_label_dir, self.path_index = ir_label_dir, path_index
        self.crop_size, self.rescale = crop_size, rescale

    def __getitem__(self, idx):
        rng, name = self.rng(idx), self.names[idx]
        img = self.data.load_image(name)
        label = load_label_png(self.ir_label_dir / f"{name}.png")
        if label.shape != img.shape[:2]:
            raise ValueError(f"{self.ir_label_dir / name}.png: IR label is {label.shape}, image is {img.shape[:2]}")
        scale = self.rescale[0] + rng.random() * (self.rescale[1] - self.rescale[0])
        img, label = normalize(rescale(img, scale, order=3)), rescale(label, scale, order=0)
        if rng.random() < 0.5:
            img, label = img[:, ::-1], label[:, ::-1]
        box = random_crop_box(rng, img.shape[:2], self.crop_size)
        img, label = crop_into([img, label], [0.0, IGNORE_INDEX], self.crop_size, box)
        # uint8 0/1, a quarter of float32's size through the workers' shared memory (a 512 crop's
        # three pair maps are 24 MB in float32); train_irn makes them float on the device
        pairs = self.path_index.pair_labels(rescale(label, 0.25, order=0))
        return {"name": name, "img": chw(img), **{k: p.to(torch.uint8) for k, p in zip(("bg_pos", "fg_pos", "neg"), pairs)}}


class TopLeftCropDataset(SeededDataset):
    """Images in a top-left ``crop_size`` crop, zero padded (train_irn's mean-displacement pass)."""

    def __init__(self, data, names, crop_size=512):
        super().__init__(data, names)
        self.crop_size = crop_size

    def __getitem__(self, idx):
        img = normalize(self.data.load_image(self.names[idx]))
        (img,) = crop_into([img], [0.0], self.crop_size, top_left_box(img.shape[:2], self.crop_size))
        return {"name": self.names[idx], "img": chw(img)}

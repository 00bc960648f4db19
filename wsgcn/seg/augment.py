"""What the training sets of both stages share: seeded augmentation, crops onto a padded canvas,
and the (H, W, C) -> (C, H, W) conversion.

Augmentation draws from a generator seeded by (seed, epoch, image index), so a sample does
not depend on the worker that makes it, nor on what was drawn before: training resumes and
shards reproducibly.  Call ``set_epoch`` before each epoch.
"""
import numpy as np
import torch
from torch.utils.data import Dataset


class SeededDataset(Dataset):
    """Images by name whose augmentation draws from ``rng(idx)``, seeded by (seed, epoch, index)."""

    def __init__(self, data, names, seed=0):
        self.data, self.names, self.seed, self.epoch = data, list(names), seed, 0

    def __len__(self):
        return len(self.names)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def rng(self, idx):
        return np.random.default_rng([self.seed, self.epoch, idx])


def crop_into(arrays, fills, crop, box):
    """Paste each (H, W[, C]) array into a crop x crop canvas filled with its ``fill``; ``box`` is
    (canvas slices, array slices), each a (rows, columns) pair of slices."""
    (cy, cx), (iy, ix) = box
    out = []
    for a, fill in zip(arrays, fills):
        canvas = np.full((crop, crop) + a.shape[2:], fill, a.dtype)
        canvas[cy, cx] = a[iy, ix]
        out.append(canvas)
    return out


def chw(img):
    """(H, W, C) array -> (C, H, W) tensor, a C-ordered copy: np.ascontiguousarray would keep the
    negative stride of a flipped image one pixel wide, which torch refuses."""
    return torch.from_numpy(img.transpose(2, 0, 1).copy())

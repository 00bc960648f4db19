"""The colour/position graph Laplacian of WSGCN's smoothness term (docs/method.md §7).

On the strided grid image (h, w), N = h*w nodes in row-major order:
S_ij = exp(-||rgb_i - rgb_j||² / 12 - ||xy_i - xy_j||² / 20), rgb in [0, 1], for
j = i + (dy, dx), dy in 0..2, dx in -2..2 (the pixel itself included, S_ii = 1); then
S = max(S, Sᵀ) and L = D - S with D = diag(row sums of S).

After symmetrisation each node's neighbourhood is the full 5 x 5 window, so L is never formed:
:class:`GridLaplacian` keeps one weight map per neighbour offset and applies L by shifted,
weighted views of the grid.
"""
import numpy as np
import torch

from GCN.batch import GridBatch


def _offsets(radius_rows, radius_cols):
    """The original's (dy, dx): rows 0..radius_rows below, columns ±radius_cols, (0, 0) included."""
    return [(dy, dx) for dy in range(radius_rows + 1) for dx in range(-radius_cols, radius_cols + 1)]


def _offset_weights(image, rgb_scale, xy_scale, radius_rows, radius_cols, device):
    """For each offset (dy, dx) enumerating the unordered pairs i != j once: (slices of the i's,
    slices of the j = i + (dy, dx), weights (h', w') float64).

    The weight depends on the pair only, so S is symmetric as it is built and the original's
    max(S, Sᵀ) changes nothing: the window's (0, -dx) offsets are the (0, dx) pairs seen from the
    other end, and (0, 0) is the self-weight, which cancels in L = D - S.
    """
    image = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image))  # a writable copy
    img = image.to(device=device if device is not None else image.device, dtype=torch.float64) / 255.0
    h, w = img.shape[:2]
    offsets = []
    for dy, dx in _offsets(radius_rows, radius_cols):
        if dy == 0 and dx <= 0:
            continue
        i = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        j = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        colour = ((img[j] - img[i]) ** 2).sum(-1)
        offsets.append((i, j, torch.exp(-colour / rgb_scale - (dy * dy + dx * dx) / xy_scale)))
    return offsets


class GridLaplacian:
    """The same L kept as one weight map per neighbour offset, for the GCN's smoothness term:
    L Y = D Y - S Y with S Y a sum of shifted, weighted views of Y on the grid -- no sparse
    product and no scatter.  ``quadratic_form`` computes L Y once and gives trace(Yᵀ L Y) the
    gradient 2 L Y directly, instead of differentiating through every shift.

    ``images``: one (h, w, 3) image in 0..255, or a list of B of them laid out as ``batch``
    (a :class:`GCN.batch.GridBatch`; default: one image on its own grid, on the CPU); pairs
    with a padding node weigh 0.
    """

    def __init__(self, images, batch=None, rgb_scale=12.0, xy_scale=20.0, radius_rows=2, radius_cols=2,
                 dtype=torch.float32):
        images = images if isinstance(images, (list, tuple)) else [images]
        batch = batch or GridBatch([np.shape(images[0])[:2]])
        per_image = [_offset_weights(im, rgb_scale, xy_scale, radius_rows, radius_cols, batch.device) for im in images]
        self.shape = height, width = batch.grid
        self.offsets = []
        degree = torch.zeros(len(images), height, width, dtype=torch.float64, device=batch.device)
        for k, (dy, dx) in enumerate(off for off in _offsets(radius_rows, radius_cols) if off[0] > 0 or off[1] > 0):
            i = (slice(None), slice(0, height - dy), slice(max(0, -dx), width - max(0, dx)))
            j = (slice(None), slice(dy, height), slice(max(0, dx), width - max(0, -dx)))
            weight = batch.place([offsets[k][2] for offsets in per_image], (height - dy, width - abs(dx)))
            degree[i] += weight
            degree[j] += weight
            self.offsets.append((i, j, weight.to(dtype)[..., None]))
        self.degree = degree.to(dtype)[..., None]

    def apply(self, y):
        """L Y for Y (B, H*W, C) (or (N, C) for one image), nodes in row-major order."""
        grid = y.reshape(-1, *self.shape, y.shape[-1])
        out = self.degree * grid
        for i, j, wt in self.offsets:
            out[i] -= wt * grid[j]
            out[j] -= wt * grid[i]
        return out.view_as(y)

    def quadratic_form(self, y):
        """trace(Yᵀ L Y) per image: a scalar for Y (N, C), (B,) for Y (B, H*W, C).
        Differentiable in Y (d/dY = 2 L Y, L being symmetric)."""
        return _QuadraticForm.apply(y, self)


class _QuadraticForm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, laplacian):
        ly = laplacian.apply(y.detach())
        ctx.save_for_backward(ly)
        return (y * ly).sum((-2, -1))

    @staticmethod
    def backward(ctx, grad):
        (ly,) = ctx.saved_tensors
        return 2 * grad[..., None, None] * ly, None

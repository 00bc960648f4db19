"""The colour/position graph Laplacian of WSGCN's smoothness term (SPEC §7).

On the strided grid image (h, w), N = h*w nodes in row-major order:
S_ij = exp(-||rgb_i - rgb_j||² / 12 - ||xy_i - xy_j||² / 20), rgb in [0, 1], for
j = i + (dy, dx), dy in 0..2, dx in -2..2 (the pixel itself included, S_ii = 1); then
S = max(S, Sᵀ) and L = D - S with D = diag(row sums of S).

After symmetrisation each node's neighbourhood is the full 5 x 5 window, so a row of L has at
most 25 nonzeros (itself included) and L is built sparse, one vectorised slice per offset.
``dense_colour_position_laplacian`` is the original's dense double loop, kept as a reference.
"""
import numpy as np
import torch


def _offsets(radius_rows, radius_cols):
    """The original's (dy, dx): rows 0..radius_rows below, columns ±radius_cols, (0, 0) included."""
    return [(dy, dx) for dy in range(radius_rows + 1) for dx in range(-radius_cols, radius_cols + 1)]


def _offset_weights(image, rgb_scale, xy_scale, radius_rows, radius_cols, device):
    """For each offset (dy, dx) enumerating the unordered pairs i != j once: (slices of the i's,
    slices of the j = i + (dy, dx), weights (h', w') float64).  Also returns (h, w).

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
    return offsets, (h, w)


def colour_position_pairs(image, rgb_scale=12.0, xy_scale=20.0, radius_rows=2, radius_cols=2, device=None):
    """The graph's edges, each unordered pair i != j once: (src (E,), dst (E,) int64, weight (E,) float64).

    image (h, w, 3) uint8 or float in 0..255 (numpy array or tensor), on ``device`` (default: the image's).
    """
    offsets, (h, w) = _offset_weights(image, rgb_scale, xy_scale, radius_rows, radius_cols, device)
    index = torch.arange(h * w, device=offsets[0][2].device if offsets else device).view(h, w)
    src = torch.cat([index[i].reshape(-1) for i, _, _ in offsets]) if offsets else index.new_zeros(0)
    dst = torch.cat([index[j].reshape(-1) for _, j, _ in offsets]) if offsets else index.new_zeros(0)
    weight = torch.cat([wt.reshape(-1) for _, _, wt in offsets]) if offsets else torch.zeros(0, dtype=torch.float64)
    return src, dst, weight


class GridLaplacian:
    """The same L kept as one weight map per neighbour offset, for the GCN's smoothness term:
    L Y = D Y - S Y with S Y a sum of shifted, weighted views of Y on the grid -- no sparse
    product and no scatter.  ``quadratic_form`` computes L Y once and gives trace(Yᵀ L Y) the
    gradient 2 L Y directly, instead of differentiating through every shift.

    ``images``: one (h, w, 3) image in 0..255, or a list of B of them laid out on a common
    ``grid`` (H, W) as in :func:`GCN.graph.grid_index`; pairs with a padding node weigh 0.
    """

    def __init__(self, images, rgb_scale=12.0, xy_scale=20.0, radius_rows=2, radius_cols=2, device=None,
                 dtype=torch.float32, grid=None):
        images = images if isinstance(images, (list, tuple)) else [images]
        per_image = [_offset_weights(im, rgb_scale, xy_scale, radius_rows, radius_cols, device) for im in images]
        self.shape = tuple(grid or per_image[0][1])
        height, width = self.shape
        device = per_image[0][0][0][2].device if per_image[0][0] else device
        self.offsets, degree = [], torch.zeros(len(images), height, width, dtype=torch.float64, device=device)
        for k, (dy, dx) in enumerate(off for off in _offsets(radius_rows, radius_cols) if off[0] > 0 or off[1] > 0):
            i = (slice(None), slice(0, height - dy), slice(max(0, -dx), width - max(0, dx)))
            j = (slice(None), slice(dy, height), slice(max(0, dx), width - max(0, -dx)))
            weight = torch.zeros(len(images), max(0, height - dy), max(0, width - abs(dx)), dtype=torch.float64, device=device)
            for b, (offsets, _) in enumerate(per_image):
                wt = offsets[k][2]
                weight[b, : wt.shape[0], : wt.shape[1]] = wt  # the image's pairs sit in the top-left corner
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


def colour_position_laplacian(image, rgb_scale=12.0, xy_scale=20.0, radius_rows=2, radius_cols=2,
                              device=None, dtype=torch.float32):
    """image (h, w, 3) in 0..255 -> L = D - S (N, N), a coalesced sparse COO tensor in ``dtype``,
    N = h*w.  Weights are computed in float64, so that L's rows sum to zero before the cast."""
    src, dst, weight = colour_position_pairs(image, rgb_scale, xy_scale, radius_rows, radius_cols, device)
    n = int(np.prod(np.asarray(image).shape[:2])) if not isinstance(image, torch.Tensor) else image.shape[0] * image.shape[1]
    degree = torch.zeros(n, dtype=torch.float64, device=weight.device)
    degree.index_add_(0, src, weight).index_add_(0, dst, weight)
    nodes = torch.arange(n, device=weight.device)
    indices = torch.stack([torch.cat([src, dst, nodes]), torch.cat([dst, src, nodes])])
    values = torch.cat([-weight, -weight, degree])
    # In-range indices by construction: skip the invariant check.
    lap = torch.sparse_coo_tensor(indices, values, (n, n), check_invariants=False)
    return lap.coalesce().to(dtype)


def dense_colour_position_laplacian(image, rgb_scale=12.0, xy_scale=20.0, radius_rows=2, radius_cols=2):
    """Reference only (tests on tiny images, benchmarks): the original WSGCN formulation, a
    Python double loop over pixels filling a dense float64 (N, N) S, then S = max(S, Sᵀ) and
    L = D - S. O(N²) memory: never use it on a real image.

    image (h, w, 3) in 0..255 -> L (N, N) float64 numpy array.
    """
    img = np.asarray(image, np.float64) / 255.0
    h, w = img.shape[:2]
    s = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            for dy, dx in _offsets(radius_rows, radius_cols):
                ny, nx = y + dy, x + dx
                if 0 <= ny < h and 0 <= nx < w:
                    d_rgb = ((img[y, x] - img[ny, nx]) ** 2).sum()
                    d_xy = dy * dy + dx * dx
                    s[y * w + x, ny * w + nx] = np.exp(-d_rgb / rgb_scale - d_xy / xy_scale)
    s = np.maximum(s, s.T)
    return np.diag(s.sum(1)) - s

"""The colour/position graph Laplacian of WSGCN's smoothness term (SPEC §7).

S_ij = exp(-||rgb_i - rgb_j||² / 12 - ||xy_i - xy_j||² / 20) for j up to 2 rows below and 2
columns either side of i (the pixel itself included), symmetrised by max; L = D - S.  Each
node has at most 25 neighbours (itself included), so L is built sparse, with one vectorised
slice per offset; the original fills a dense float64 N x N matrix in a Python loop.
"""
import numpy as np
import torch


def _neighbour_offsets(rows, cols):
    """Offsets (dy, dx) that enumerate each unordered neighbour pair once."""
    return [(dy, dx) for dy in range(rows + 1) for dx in range(-cols, cols + 1) if dy > 0 or dx > 0]


def colour_position_laplacian(image, rgb_scale=12.0, xy_scale=20.0, rows=2, cols=2, device=None,
                              dtype=torch.float32):
    """image (h, w, 3), values 0..255 -> L (N, N) sparse COO, N = h*w (row-major nodes)."""
    img = torch.as_tensor(np.asarray(image), dtype=torch.float64, device=device) / 255.0
    h, w = img.shape[:2]
    index = torch.arange(h * w, device=img.device).view(h, w)
    src, dst, weight = [], [], []
    for dy, dx in _neighbour_offsets(rows, cols):
        a = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))       # i
        b = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))           # j = i + (dy, dx)
        colour = ((img[b] - img[a]) ** 2).sum(-1)
        src.append(index[a].reshape(-1))
        dst.append(index[b].reshape(-1))
        weight.append(torch.exp(-colour / rgb_scale - (dy * dy + dx * dx) / xy_scale).reshape(-1))
    src, dst, weight = torch.cat(src), torch.cat(dst), torch.cat(weight)
    # S is symmetric by construction (the weight depends on the pair only); its diagonal S_ii = 1
    # cancels in L_ii = D_ii - S_ii, so L's diagonal is the off-diagonal degree.
    degree = torch.zeros(h * w, dtype=torch.float64, device=img.device)
    degree.index_add_(0, src, weight).index_add_(0, dst, weight)
    nodes = torch.arange(h * w, device=img.device)
    indices = torch.stack([torch.cat([src, dst, nodes]), torch.cat([dst, src, nodes])])
    values = torch.cat([-weight, -weight, degree])
    return torch.sparse_coo_tensor(indices, values.to(dtype), (h * w, h * w), check_invariants=False).coalesce()


def dense_colour_position_laplacian(image, rgb_scale=12.0, xy_scale=20.0, rows=2, cols=2):
    """Reference only (tests, benchmark): the original's formulation, a Python loop over pixels
    filling a dense float64 (N, N) matrix, then max-symmetrisation and L = D - S."""
    img = np.asarray(image, np.float64) / 255.0
    h, w = img.shape[:2]
    s = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            for ny in range(y, y + rows + 1):
                for nx in range(x - cols, x + cols + 1):
                    if 0 <= ny < h and 0 <= nx < w:
                        d_rgb = ((img[y, x] - img[ny, nx]) ** 2).sum()
                        d_xy = (y - ny) ** 2 + (x - nx) ** 2
                        s[y * w + x, ny * w + nx] = np.exp(-d_rgb / rgb_scale - d_xy / xy_scale)
    s = np.maximum(s, s.T)
    return np.diag(s.sum(1)) - s

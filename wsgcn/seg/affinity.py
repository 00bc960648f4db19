"""Inter-pixel affinities from a class-boundary map, as IRNet (Ahn et al., CVPR 2019) defines them.

Two pixels i and j = i + (dy, dx) within a radius are related by the affinity

    a_ij = 1 - max_{p in path(dy, dx)} B[i + p]

where B is the boundary map on the stride-4 feature grid and the path is the set of integer
points lying within distance 1 of the segment from i to j.  Two forms are provided:

* :class:`PathIndex` -- IRNet's ``misc/indexing.py``: fixed-size grid, a source block and one
  destination per offset, used by the training loss (radius 10) on fixed crops;
* :func:`affinity_graph` / :func:`random_walk` -- the sparse graph on all h*w pixels used by
  the random walk of ``make_sem_seg_labels`` (radius 5) and later as the GCN's graph.  Nothing
  here builds an N x N matrix except the ``dense_*`` functions of the GCN's exact graph mode.

Offsets are kept in IRNet's canonical order ("search_dst"): grouped by path length, in the
enumeration order within a group, so affinity tensors line up channel for channel with the
original's.
"""
import functools
import warnings

import numpy as np
import torch

# ----------------------------------------------------------------------------- offsets and paths

@functools.lru_cache(maxsize=None)
def _search_paths(radius):
    """IRNet's ``get_search_paths_dst``: offsets and paths grouped by path length.

    Returns a tuple of groups, increasing in path length L; each group is a pair
    (offsets (n_g, 2) int64, paths (n_g, L, 2) int64), the path's first point being the
    offset itself (the destination).
    """
    radius = int(radius)
    if radius < 2:
        raise ValueError(f"radius must be >= 2 to have any neighbour, got {radius}")

    # Half of the disc only, so that each unordered pair appears once.
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius)
                if dy * dy + dx * dx < radius * radius]

    by_length = {}
    for dy, dx in offsets:
        length_sq = dy * dy + dx * dx
        path = [(y, x)
                for y in range(min(0, dy), max(0, dy) + 1)
                for x in range(min(0, dx), max(0, dx) + 1)
                if (dy * x - dx * y) ** 2 / length_sq < 1]
        # Python's sort is stable; the destination is the unique point of largest |y|+|x| in
        # the bounding box, so it comes first and IRNet reads it off as path[0].
        path.sort(key=lambda p: -abs(p[0]) - abs(p[1]))
        by_length.setdefault(len(path), []).append(path)

    groups = []
    for length in sorted(by_length):
        paths = np.asarray(by_length[length], dtype=np.int64)      # (n_g, L, 2)
        paths.setflags(write=False)                                 # cached: keep it intact
        groups.append((paths[:, 0], paths))
    return tuple(groups)


def neighbour_offsets(radius=5):
    """(n, 2) int64 array of the (dy, dx) neighbour offsets, in IRNet's canonical order.

    n = 34 for radius 5.  Only one of each pair of opposite offsets is listed.
    """
    return np.concatenate([off for off, _ in _search_paths(radius)], axis=0)


def offset_paths(radius=5):
    """List of (L_i, 2) int64 arrays, the path points of each offset of
    :func:`neighbour_offsets` (destination first, origin included)."""
    return [np.array(p) for _, paths in _search_paths(radius) for p in paths]


# ----------------------------------------------------------------------------- training form

class PathIndex:
    """IRNet's ``PathIndex`` for a fixed (H, W) grid.

    Source pixels are the block rows [0, H - rf) x cols [rf, W - rf) with rf = ceil(radius) - 1,
    so that every destination (source + offset, dy >= 0, |dx| <= rf) and every path point stays
    inside the grid.

    Attributes:
        offsets: (n, 2) int64 canonical offsets.
        radius_floor: rf.
        src_indices: (S,) int64 flat (row-major) indices of the source block.
        dst_indices: (n, S) int64 flat indices of the destinations, canonical order.
        path_indices: list over path-length groups of (n_g, L, S) int64 numpy arrays, the flat
            indices of every path point of every source (IRNet's layout).
    """

    def __init__(self, radius, grid_size):
        self.radius = radius
        self.radius_floor = int(np.ceil(radius) - 1)
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        height, width = self.grid_size
        rf = self.radius_floor
        if height - rf <= 0 or width - 2 * rf <= 0:
            raise ValueError(f"grid {self.grid_size} too small for radius {radius}")

        groups = _search_paths(radius)
        self.offsets = np.concatenate([off for off, _ in groups], axis=0)

        src_y, src_x = np.meshgrid(np.arange(height - rf), np.arange(rf, width - rf), indexing="ij")
        src_y, src_x = src_y.reshape(-1), src_x.reshape(-1)
        self.src_indices = src_y * width + src_x

        # Broadcast (n_g, L, 1) path points against the (S,) sources.
        self.path_indices = [(src_y + paths[..., 0:1]) * width + (src_x + paths[..., 1:2])
                             for _, paths in groups]
        self.dst_indices = np.concatenate([p[:, 0] for p in self.path_indices], axis=0)

        self._device_cache = {}

    @property
    def num_offsets(self):
        return len(self.offsets)

    def __getstate__(self):
        # the per-device tensors stay behind when a dataset is pickled into a data-loading worker
        # (spawn/forkserver): CUDA tensors there would be costly or fail
        return {**self.__dict__, "_device_cache": {}}

    def _path_indices_on(self, device):
        """The path index tensors on ``device``, copied there once and kept."""
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = [torch.from_numpy(p).to(device) for p in self.path_indices]
        return self._device_cache[key]

    def affinity(self, boundary):
        """Affinities of all (source, destination) pairs.

        boundary: (B, H, W) (or anything reshapable to (B, H*W), e.g. (B, 1, H, W)) tensor.
        Returns (B, n, S) tensor, 1 - max of the boundary over each path; differentiable.
        """
        batch = boundary.shape[0]
        edge = boundary.reshape(batch, -1)
        if edge.shape[1] != self.grid_size[0] * self.grid_size[1]:
            raise ValueError(f"boundary {tuple(boundary.shape)} does not match grid {self.grid_size}")
        affs = []
        for ind in self._path_indices_on(edge.device):
            n_g, length, size = ind.shape
            values = edge.index_select(1, ind.reshape(-1)).view(batch, n_g, length, size)
            # max() rather than amax(): like IRNet's max_pool2d, the gradient goes to a single
            # maximal point when several tie.
            affs.append(1 - values.max(dim=2).values)
        return torch.cat(affs, dim=1)

    def pair_labels(self, label_map):
        """Affinity labels of IRNet's ``GetAffinityLabelFromIndices``.

        label_map: (H, W) integer numpy array or tensor; 0 = background, 1..20 = classes,
        >= 21 (255) = ignore.
        Returns (bg_pos, fg_pos, neg), each an (n, S) float32 tensor (on the label map's
        device when it is a tensor): bg_pos = both ends valid and background, fg_pos = both
        ends valid, equal and foreground, neg = both ends valid and different.
        """
        if torch.is_tensor(label_map):
            flat = label_map.reshape(-1)
            src = torch.from_numpy(self.src_indices).to(flat.device)
            dst = torch.from_numpy(self.dst_indices).to(flat.device)
        else:
            flat = torch.from_numpy(np.ascontiguousarray(label_map).reshape(-1))
            src = torch.from_numpy(self.src_indices)
            dst = torch.from_numpy(self.dst_indices)
        if flat.numel() != self.grid_size[0] * self.grid_size[1]:
            raise ValueError(f"label map of {flat.numel()} pixels does not match grid {self.grid_size}")
        flat = flat.long()
        label_from = flat[src].unsqueeze(0)         # (1, S)
        label_to = flat[dst]                        # (n, S)

        valid = (label_from < 21) & (label_to < 21)
        equal = label_from == label_to
        pos = equal & valid
        bg_pos = (pos & (label_from == 0)).float()
        fg_pos = (pos & (label_from > 0)).float()
        neg = (~equal & valid).float()
        return bg_pos, fg_pos, neg


# ----------------------------------------------------------------------------- inference form

def affinity_graph(boundary, radius=5):
    """Sparse symmetric affinity matrix A on the h*w pixels (row-major node indices).

    boundary: (h, w) tensor in [0, 1].
    Returns (rows, cols, values): int64 (E,), int64 (E,), (E,) in the boundary's dtype, all on
    its device.  The entries are every in-image pair of the canonical offsets in both
    directions, a_ij = 1 - max of the boundary on the path, followed by the diagonal a_ii = 1.
    Entries are unique (no offset is the negation of another).

    Dropping the pairs with an end outside the image is what IRNet's padding by 1.0 and
    cropping amounts to: a path never leaves the bounding box of its two ends.
    """
    if boundary.dim() != 2:
        raise ValueError(f"boundary must be (h, w), got {tuple(boundary.shape)}")
    height, width = boundary.shape
    device = boundary.device
    node = torch.arange(height * width, device=device).view(height, width)

    rows, cols, values = [], [], []
    for (dy, dx), path in zip(neighbour_offsets(radius), offset_paths(radius)):
        dy, dx = int(dy), int(dx)
        # Sources whose destination lies in the image (dy >= 0 always).
        y1 = height - dy
        x0, x1 = max(0, -dx), width - max(0, dx)
        if y1 <= 0 or x1 <= x0:
            continue
        path_max = torch.stack([boundary[py:py + y1, x0 + px:x1 + px] for py, px in path]).amax(0)
        rows.append(node[:y1, x0:x1].reshape(-1))
        cols.append(node[dy:dy + y1, x0 + dx:x1 + dx].reshape(-1))
        values.append(1 - path_max.reshape(-1))

    src = torch.cat(rows) if rows else node.new_empty(0)
    dst = torch.cat(cols) if cols else node.new_empty(0)
    aff = torch.cat(values) if values else boundary.new_empty(0)
    diag = node.reshape(-1)
    return (torch.cat([src, dst, diag]),
            torch.cat([dst, src, diag]),
            torch.cat([aff, aff, torch.ones_like(diag, dtype=boundary.dtype)]))


def _transition_entries(boundary, beta, radius):
    """COO entries (rows, cols, values) of T = A**beta with every column summed to 1."""
    rows, cols, aff = affinity_graph(boundary, radius)
    scaled = aff ** beta
    n_nodes = boundary.numel()
    # The diagonal contributes 1 to every column, so no sum is 0.
    col_sum = torch.zeros(n_nodes, dtype=scaled.dtype, device=scaled.device).index_add_(0, cols, scaled)
    return rows, cols, scaled / col_sum[cols]


def _sparse_coo(rows, cols, values, n_nodes):
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n_nodes, n_nodes),
                                   check_invariants=False).coalesce()


def random_walk(x, boundary, beta=10, exp_times=8, radius=5):
    """IRNet's ``propagate_to_edge``: x * (1 - B) propagated by T^(2^exp_times).

    x: (K, h, w) CAM-like scores.  boundary: (h, w).
    Returns (K, h, w) = ((x * (1 - boundary)).reshape(K, N) @ T^(2^exp_times)).reshape(K, h, w),
    in the promoted dtype of x and boundary, on their device.

    T^(2^exp_times) is dense in general, so instead T is applied 2^exp_times times as a sparse
    product: x_row @ T == (T^T @ x_row^T)^T, with T^T in CSR, which is the fast layout for
    sparse @ dense on CPU and CUDA alike.
    """
    if x.dim() != 3 or x.shape[1:] != boundary.shape:
        raise ValueError(f"x must be (K, h, w) with (h, w) = {tuple(boundary.shape)}, got {tuple(x.shape)}")
    dtype = torch.promote_types(x.dtype, boundary.dtype)
    boundary = boundary.to(dtype)
    k, height, width = x.shape
    n_nodes = height * width

    rows, cols, values = _transition_entries(boundary, beta, radius)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        trans_t = _sparse_coo(cols, rows, values, n_nodes).to_sparse_csr()

    state = (x.to(dtype) * (1 - boundary)).reshape(k, n_nodes).t().contiguous()   # (N, K)
    for _ in range(2 ** exp_times):
        state = trans_t @ state
    return state.t().reshape(k, height, width)


# ----------------------------------------------------------------------------- dense (N x N) forms

def dense_affinity(boundary, radius=5):
    """Dense (N, N) affinity matrix: O(N²) memory (the GCN's ``--graph dense`` and tests)."""
    rows, cols, values = affinity_graph(boundary, radius)
    n_nodes = boundary.numel()
    dense = torch.zeros(n_nodes, n_nodes, dtype=values.dtype, device=values.device)
    dense[rows, cols] = values
    return dense


def dense_transition_power(boundary, beta=10, exp_times=8, radius=5):
    """Dense T^(2^exp_times) (N, N) by IRNet's ``to_transition_matrix``: exp_times dense
    squarings, O(N²) memory (the GCN's ``--graph dense`` and tests)."""
    scaled = dense_affinity(boundary, radius) ** beta
    trans_mat = scaled / scaled.sum(0, keepdim=True)
    for _ in range(exp_times):
        trans_mat = trans_mat @ trans_mat
    return trans_mat

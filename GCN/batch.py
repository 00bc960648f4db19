"""Several images' GCNs trained as one: their node grids laid out on one common grid.

Image b's (h_b, w_b) grid of nodes sits in the top-left corner of an (H, W) grid, H and W the
largest of the batch, its nodes in row-major order; every other node of the (H, W) grid is
padding: zero features, the label ``PADDING``, no edge in the graphs or the Laplacian, no loss.
Every quantity of the batch is then one (B, H*W, ...) tensor, and every training step is one
set of batched products whose result for image b is the one it gets alone.
"""
import numpy as np
import torch

PADDING = -1  # the label of a padding node (255 is an unlabelled node of an image)


def grid_index(shape, grid):
    """Where the nodes of an (h, w) grid sit on a larger (H, W) grid: (h*w,) int64 indices."""
    (h, w), width = shape, grid[1]
    return (np.arange(h)[:, None] * width + np.arange(w)[None, :]).reshape(-1)


class GridBatch:
    """The layout of B images' grids, ``shapes`` [(h_b, w_b)], on one (H, W) grid on ``device``.

    ``grid`` (H, W); ``num_nodes`` H*W; ``index[b]`` image b's node indices, (h_b*w_b,) int64
    numpy (``node_index[b]`` the same on the device); ``valid`` (B, H*W) bool, True on the
    images' own nodes.
    """

    def __init__(self, shapes, device="cpu"):
        self.shapes = [tuple(int(v) for v in shape) for shape in shapes]
        if not self.shapes:
            raise ValueError("a GridBatch needs at least one image")
        self.grid = tuple(max(shape[k] for shape in self.shapes) for k in (0, 1))
        self.num_nodes = self.grid[0] * self.grid[1]
        self.device = torch.device(device)
        self.index = [grid_index(shape, self.grid) for shape in self.shapes]
        self.node_index = [torch.as_tensor(index, device=self.device) for index in self.index]
        self.valid = self.scatter([torch.ones(len(index), dtype=torch.bool) for index in self.index], dtype=torch.bool)

    def __len__(self):
        return len(self.shapes)

    def scatter(self, values, fill=0, dtype=torch.float32):
        """Per-image node values [(h_b*w_b, ...) arrays or tensors] -> (B, H*W, ...) on the
        device, ``fill`` on padding nodes."""
        first = torch.as_tensor(values[0])
        out = torch.full((len(self), self.num_nodes) + tuple(first.shape[1:]), fill, dtype=dtype, device=self.device)
        for b, value in enumerate(values):
            out[b, self.node_index[b]] = torch.as_tensor(value).to(self.device, dtype)
        return out

    def scatter_maps(self, maps):
        """Per-image feature maps [(C, h_b, w_b)] -> node features (B, H*W, C) float32."""
        return self.scatter([np.asarray(m).reshape(len(m), -1).T for m in maps])

    def scatter_labels(self, label_maps):
        """Per-image label maps [(h_b, w_b)] -> (B, H*W) int64, ``PADDING`` on padding nodes."""
        return self.scatter([np.asarray(m, np.int64).reshape(-1) for m in label_maps], PADDING, torch.int64)

    def place(self, maps, size=None):
        """Per-image maps [(h_b', w_b', ...)] -> (B, *size, ...) on the device, each in its
        top-left corner, zeros elsewhere: maps on the grid itself, or on a part of it of
        ``size`` (default (H, W)), e.g. the weights between nodes (y, x) and (y + dy, x + dx)."""
        first = torch.as_tensor(maps[0])
        size = tuple(max(0, v) for v in (size or self.grid))
        out = first.new_zeros((len(self),) + size + tuple(first.shape[2:]), device=self.device)
        for b, m in enumerate(maps):
            m = torch.as_tensor(m)
            out[b, : m.shape[0], : m.shape[1]] = m.to(self.device)
        return out

    def image_maps(self, values):
        """(B, H*W, C) -> per image its (C, h_b, w_b) maps."""
        return [values[b, self.node_index[b]].t().reshape(-1, *shape) for b, shape in enumerate(self.shapes)]

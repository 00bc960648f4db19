"""Reference forms that only the tests use: what the production code is checked against, and
the single-image forms of what production builds for batches of images."""
import torch

from GCN.batch import GridBatch
from GCN.graph import LowRankGraph, graph_mode, low_rank_parts
from wsgcn.seg.affinity import _sparse_coo, _transition_entries


def transition_matrix(boundary, beta=10, radius=5):
    """Column-stochastic transition matrix T = A**beta / A**beta.sum(0), sparse.

    boundary: (h, w) tensor.  Returns a coalesced sparse COO tensor (N, N), N = h*w, on the
    boundary's device and in its dtype.
    """
    rows, cols, values = _transition_entries(boundary, beta, radius)
    return _sparse_coo(rows, cols, values, boundary.numel())


def low_rank_graph(boundary, **kwargs):
    """One image's :class:`GCN.graph.LowRankGraph` from its boundary map (h, w), on the map's
    device; ``kwargs`` go to :func:`GCN.graph.low_rank_parts` (beta, exp_times, radius, rank, ...)."""
    parts = low_rank_parts(boundary, **kwargs)
    return LowRankGraph.batch([parts], GridBatch([parts["shape"]], boundary.device))


def build_graph(boundaries, cfg, batch=None):
    """The graph of ``cfg.graph`` for B boundary maps (h_b, w_b) laid out as ``batch`` (default:
    one grid as large as the largest map, on the maps' device): prepare, then assemble."""
    mode = graph_mode(cfg.graph)
    batch = batch or GridBatch([b.shape for b in boundaries], torch.as_tensor(boundaries[0]).device)
    return mode.assemble([mode.prepare(torch.as_tensor(b).cpu(), cfg) for b in boundaries], batch, cfg)

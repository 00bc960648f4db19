"""The GCN's graph (SPEC §7): M = rownorm(max(T^256, T^256ᵀ) + I), rebuilt on the device from
the class-boundary map that the IRN stage stores, never read from disk as a dense matrix.

``exact_adjacency`` is the reference formulation: a dense (N, N) matrix in memory only, N = h*w
nodes (about 550 MB in float32 for a 500x375 VOC image, fine on a GPU, slow on a CPU).
"""
import torch

from wsgcn.affinity import dense_transition_power


def exact_adjacency(boundary, beta=10, exp_times=8, radius=5):
    """boundary (h, w) -> M (N, N) dense, row-stochastic, in the boundary's dtype and device."""
    t = dense_transition_power(boundary, beta=beta, exp_times=exp_times, radius=radius)
    m = torch.maximum(t, t.t())
    m.diagonal().add_(1.0)
    return m / m.sum(1, keepdim=True)

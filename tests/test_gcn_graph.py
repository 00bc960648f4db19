import numpy as np
import torch

from GCN.graph import exact_adjacency
from wsgcn.affinity import affinity_graph


def reference_adjacency(boundary, beta=10, exp_times=8):
    """SPEC §7 in numpy float64 from the sparse affinity entries: T = colnorm(A^beta),
    T^256 by repeated squaring, M = rownorm(max(T^256, T^256ᵀ) + I)."""
    n = boundary.numel()
    rows, cols, values = (t.numpy() for t in affinity_graph(boundary))
    a = np.zeros((n, n))
    a[rows, cols] = values
    t = a ** beta / (a ** beta).sum(0, keepdims=True)
    for _ in range(exp_times):
        t = t @ t
    m = np.maximum(t, t.T) + np.eye(n)
    return m / m.sum(1, keepdims=True)


def test_exact_adjacency_matches_the_dense_formulation():
    g = torch.Generator().manual_seed(0)
    boundary = torch.rand(9, 12, generator=g, dtype=torch.float64) ** 3
    boundary[4, :] = 0.97  # a wall splits the image in two
    m = exact_adjacency(boundary)
    np.testing.assert_allclose(m.numpy(), reference_adjacency(boundary), atol=1e-10)
    np.testing.assert_allclose(m.sum(1).numpy(), 1, atol=1e-12)
    # the wall: little mass crosses from the top half to the bottom half
    top, bottom = slice(0, 4 * 12), slice(5 * 12, 9 * 12)
    assert m[top, bottom].sum(1).max() < 0.05

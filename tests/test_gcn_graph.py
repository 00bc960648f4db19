import numpy as np
import pytest
import torch

from GCN.graph import exact_adjacency
from tests.reference import build_graph, low_rank_graph
from wsgcn.seg.affinity import affinity_graph


def reference_adjacency(boundary, beta=10, exp_times=8):
    """docs/method.md §7 in numpy float64 from the sparse affinity entries: T = colnorm(A^beta),
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


def two_region_boundary(h=24, w=30, seed=0):
    """A wall across the image, a closed ring, a few walled-in pixels, mild noise: (h, w) float32."""
    g = torch.Generator().manual_seed(seed)
    boundary = 0.05 * torch.rand(h, w, generator=g)
    boundary[h // 2, :] = 0.98
    boundary[3:9, 4] = boundary[3:9, 10] = 0.97
    boundary[3, 4:11] = boundary[8, 4:11] = 0.97
    for y, x in ((18, 5), (20, 25)):  # pixels cut off from every neighbour
        boundary[y - 1:y + 2, x - 1:x + 2] = 0.99
        boundary[y, x] = 0.02
    return boundary


def test_lowmem_graph_approximates_the_exact_one():
    boundary = two_region_boundary()
    exact = exact_adjacency(boundary.double()).float()
    graph = low_rank_graph(boundary, rank=32)
    assert len(graph.alone) > 0 and len(graph.kept) > 0  # both parts of the operator are exercised
    x = torch.randn(boundary.numel(), 21, generator=torch.Generator().manual_seed(1))
    ours, reference = graph(x), exact @ x
    assert ((ours - reference).norm() / reference.norm()).item() < 0.06
    assert (ours.argmax(1) == reference.argmax(1)).float().mean().item() >= 0.98
    torch.testing.assert_close(graph(torch.ones(boundary.numel(), 1)), torch.ones(boundary.numel(), 1))


def test_lowmem_graph_is_differentiable_and_small_graphs_use_a_dense_solver():
    boundary = torch.rand(8, 9, generator=torch.Generator().manual_seed(2)) ** 3
    boundary[4, :] = 0.97
    graph = low_rank_graph(boundary, rank=32)  # 72 nodes: a dense eigensolver
    y = torch.randn(72, 5, requires_grad=True)
    graph(y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    exact = exact_adjacency(boundary.double()).float()
    x = torch.randn(72, 4)
    assert ((graph(x) - exact @ x).norm() / (exact @ x).norm()).item() < 0.06


def test_lowmem_graph_of_an_all_boundary_map_is_the_identity():
    boundary = torch.ones(6, 7)  # every node cut off from every neighbour, as the exact M says
    graph = low_rank_graph(boundary)
    y = torch.randn(42, 3)
    torch.testing.assert_close(graph(y), y)
    torch.testing.assert_close(exact_adjacency(boundary.double()).float(), torch.eye(42))


def test_graph_modes_are_a_registry():
    from dataclasses import replace

    from GCN.batch import GridBatch
    from GCN.config import GCNConfig
    from GCN.graph import GRAPHS, LowRankGraph, graph_mode

    assert set(GRAPHS) == {"dense", "lowmem"} and graph_mode("lowmem") is GRAPHS["lowmem"]
    with pytest.raises(ValueError, match="--graph 'sparse': use one of dense, lowmem"):
        graph_mode("sparse")
    boundaries = [two_region_boundary(24, 30, 0)[:14, :12], two_region_boundary(24, 30, 1)[:9, :11]]
    batch = GridBatch([(14, 12), (9, 11)])
    dense = build_graph(boundaries, replace(GCNConfig(), graph="dense"), batch)
    assert dense.shape == (2, 168, 168)
    index = batch.node_index[1]
    torch.testing.assert_close(dense[1][index[:, None], index], exact_adjacency(boundaries[1]))
    assert dense[1].sum() == pytest.approx(99, rel=1e-5)  # 99 rows of 1, padding rows and columns empty
    lowmem = build_graph(boundaries, GCNConfig(), batch)
    assert isinstance(lowmem, LowRankGraph)


def test_each_graph_mode_says_how_many_images_batch_on_cuda():
    from dataclasses import replace

    from GCN.config import GCNConfig
    from GCN.graph import GRAPHS
    from GCN.train import batch_size

    assert {name: mode.cuda_batch for name, mode in GRAPHS.items()} == {"dense": 1, "lowmem": 32}
    for name in GRAPHS:
        cfg = replace(GCNConfig(), graph=name)
        assert batch_size(cfg, torch.device("cuda")) == GRAPHS[name].cuda_batch
        assert batch_size(cfg, torch.device("cpu")) == 1
        assert batch_size(replace(cfg, batch_images=5), torch.device("cuda")) == 5

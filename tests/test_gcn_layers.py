import math

import pytest
import torch
import torch.nn.functional as F

from GCN.layers import GraphConvolution, as_propagator
from GCN.losses import partial_nll
from GCN.models import GCN


def test_graph_convolution_init_range_and_formula():
    torch.manual_seed(0)
    layer = GraphConvolution(160, 16)
    stdv = 1 / math.sqrt(16)
    assert layer.weight.shape == (160, 16) and layer.bias.shape == (16,)
    assert layer.weight.abs().max() <= stdv and layer.bias.abs().max() <= stdv
    assert layer.weight.abs().max() > 0.9 * stdv  # the whole ±1/sqrt(out) range, not a narrower one
    x, m = torch.randn(7, 160), torch.rand(7, 7)
    torch.testing.assert_close(layer(x, m), m @ (x @ layer.weight) + layer.bias)
    assert GraphConvolution(4, 3, bias=False).bias is None


def test_as_propagator_dense_sparse_callable_agree():
    m, x = torch.rand(6, 6), torch.randn(6, 3)
    expected = m @ x
    torch.testing.assert_close(as_propagator(m)(x), expected)
    torch.testing.assert_close(as_propagator(m.to_sparse())(x), expected)
    f = lambda v: m @ v  # noqa: E731
    assert as_propagator(f) is f
    with pytest.raises(TypeError):
        as_propagator(3)


@pytest.mark.parametrize("graph", ["dense", "sparse", "callable"])
def test_gcn_log_probabilities_and_precomputed_first_layer(graph):
    torch.manual_seed(0)
    model = GCN(dropout=0.3).eval()  # the defaults: 160 -> 16 -> 21
    x, m = torch.randn(9, 160), torch.rand(9, 9)
    g = {"dense": m, "sparse": m.to_sparse(), "callable": lambda v: m @ v}[graph]
    out = model(x, g)
    assert out.shape == (9, 21)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(9))
    torch.testing.assert_close(model(x, g, x_propagated=m @ x), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_dropout_only_in_training(training):
    torch.manual_seed(0)
    model = GCN(6, 32, 3, dropout=0.5).train(training)
    x, m = torch.randn(5, 6), torch.eye(5)
    assert torch.equal(model(x, m), model(x, m)) != training


def test_gcn_learns_two_cliques():
    """Two cliques, two labelled nodes each: after 100 Adam steps the unlabelled nodes take
    their clique's label."""
    torch.manual_seed(0)
    n = 10
    m = torch.zeros(n, n)
    m[:5, :5] = 1
    m[5:, 5:] = 1
    m = (m / m.sum(1, keepdim=True)).to_sparse()
    x = torch.randn(n, 8)
    labels = torch.full((n,), 255)
    labels[[0, 1]], labels[[5, 6]] = 0, 3
    model = GCN(8, 16, 4, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        partial_nll(model(x, m), labels).backward()
        optimizer.step()
    out = model.eval()(x, m)
    assert out.argmax(1).tolist() == [0] * 5 + [3] * 5
    assert F.nll_loss(out, torch.tensor([0] * 5 + [3] * 5)).item() < 0.1

import math

import pytest
import torch

from GCN.layers import GraphConvolution, propagate
from GCN.models import GCN


def test_graph_convolution_init_range_and_formula():
    torch.manual_seed(0)
    layer = GraphConvolution(160, 16)
    bound = 1 / math.sqrt(16)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert layer.weight.abs().max() > 0.9 * bound  # uniform over the whole range, not a narrower one
    x, m = torch.randn(7, 160), torch.rand(7, 7)
    torch.testing.assert_close(layer(x, m), m @ (x @ layer.weight) + layer.bias)


def test_propagate_dense_sparse_callable_agree():
    m, x = torch.rand(6, 6), torch.randn(6, 3)
    expected = m @ x
    torch.testing.assert_close(propagate(m, x), expected)
    torch.testing.assert_close(propagate(m.to_sparse(), x), expected)
    torch.testing.assert_close(propagate(lambda v: m @ v, x), expected)


def test_gcn_output_and_precomputed_first_layer():
    torch.manual_seed(0)
    model = GCN(10, 4, 5, dropout=0.3).eval()
    x, m = torch.randn(9, 10), torch.rand(9, 9)
    out = model(x, m)
    assert out.shape == (9, 5)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(9))
    torch.testing.assert_close(model(x, m, x_propagated=m @ x), out, rtol=1e-5, atol=1e-6)


def test_gcn_learns_two_cliques():
    """Two cliques, two labelled nodes each: the unlabelled nodes take their clique's label."""
    torch.manual_seed(0)
    n = 10
    m = torch.zeros(n, n)
    m[:5, :5] = 1
    m[5:, 5:] = 1
    m = m / m.sum(1, keepdim=True)
    x = torch.randn(n, 8)
    labels = torch.full((n,), 255)
    labels[[0, 1]], labels[[5, 6]] = 0, 3
    model = GCN(8, 16, 4, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        out = model(x, m)
        torch.nn.functional.nll_loss(out[labels != 255], labels[labels != 255]).backward()
        optimizer.step()
    assert model.eval()(x, m).argmax(1).tolist() == [0] * 5 + [3] * 5


@pytest.mark.parametrize("training", [True, False])
def test_dropout_only_in_training(training):
    torch.manual_seed(0)
    model = GCN(6, 32, 3, dropout=0.5).train(training)
    x, m = torch.randn(5, 6), torch.eye(5)
    same = torch.equal(model(x, m), model(x, m))
    assert same != training

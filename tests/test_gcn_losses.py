import math

import pytest
import torch

from GCN.losses import entropy_loss, laplacian_loss, partial_nll, total_loss


@pytest.fixture
def case():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(5, 3), 1)
    labels = torch.tensor([0, 2, 255, 1, 255])
    return log_probs, labels


def test_partial_nll_two_means(case):
    y, labels = case
    fg = -(y[1, 2] + y[3, 1]) / 2
    bg = -y[0, 0]
    assert partial_nll(y, labels).item() == pytest.approx((fg + bg).item())
    # No background label: the background mean adds nothing (not NaN).
    assert partial_nll(y, torch.tensor([255, 2, 255, 255, 255])).item() == pytest.approx(-y[1, 2].item())
    assert partial_nll(y, torch.full((5,), 255)).item() == 0


def test_entropy_on_unlabelled_nodes(case):
    y, labels = case
    expected = -sum(math.exp(y[i, c]) * y[i, c].item() for i in (2, 4) for c in range(3)) / (2 * 3)
    assert entropy_loss(y, labels).item() == pytest.approx(expected)
    assert entropy_loss(y, torch.zeros(5, dtype=torch.long)).item() == 0


def test_laplacian_term_is_trace(case):
    y, _ = case
    a = torch.rand(5, 5)
    s = (a + a.t()) / 2
    lap = torch.diag(s.sum(1)) - s
    expected = torch.trace(y.t() @ lap @ y) / 5
    assert laplacian_loss(y, lap.to_sparse()).item() == pytest.approx(expected.item(), rel=1e-5)
    # trace(YᵀLY) = ½ Σ s_ij ||y_i - y_j||² >= 0
    direct = 0.5 * sum(s[i, j] * ((y[i] - y[j]) ** 2).sum() for i in range(5) for j in range(5)) / 5
    assert laplacian_loss(y, lap).item() == pytest.approx(direct.item(), rel=1e-5)


def test_total_loss_weights_and_switches(case):
    y, labels = case
    lap = torch.eye(5).to_sparse()
    losses = total_loss(y, labels, lap)
    expected = losses["nll"] + 10 * losses["entropy"] + 0.01 * losses["laplacian"]
    assert losses["total"].item() == pytest.approx(expected.item())
    plain = total_loss(y, labels, None, use_ent=False, use_lap=False)
    assert set(plain) == {"nll", "total"} and plain["total"].item() == pytest.approx(losses["nll"].item())

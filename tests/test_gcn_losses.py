import math

import pytest
import torch

from GCN.batch import GridBatch
from GCN.laplacian import GridLaplacian
from GCN.losses import entropy_loss, laplacian_loss, partial_nll, total_loss


@pytest.fixture
def case():
    """N = 5 nodes, 3 classes: background 0, foreground 1 and 2, unlabelled 255."""
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(5, 3), 1)
    labels = torch.tensor([0, 2, 255, 1, 255])
    return log_probs, labels


def test_partial_nll_two_means(case):
    y, labels = case
    fg = -(y[1, 2] + y[3, 1]) / 2
    bg = -y[0, 0]
    assert partial_nll(y, labels).item() == pytest.approx((fg + bg).item())
    two_bg = torch.tensor([0, 2, 0, 255, 255])
    assert partial_nll(y, two_bg).item() == pytest.approx((-y[1, 2] - (y[0, 0] + y[2, 0]) / 2).item())


@pytest.mark.parametrize("labels, expected", [
    ([255, 2, 255, 255, 255], lambda y: -y[1, 2]),   # no background
    ([0, 255, 255, 0, 255], lambda y: -(y[0, 0] + y[3, 0]) / 2),  # no foreground
    ([255] * 5, lambda y: torch.tensor(0.0)),        # nothing labelled
])
def test_partial_nll_empty_groups_add_zero(case, labels, expected):
    y, _ = case
    loss = partial_nll(y, torch.tensor(labels))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected(y).item())


def test_partial_nll_gradient_is_finite_with_empty_groups(case):
    y, _ = case
    y = y.clone().requires_grad_()
    partial_nll(y, torch.full((5,), 255)).backward()
    assert torch.equal(y.grad, torch.zeros_like(y))


def test_entropy_on_unlabelled_nodes(case):
    y, labels = case
    expected = -sum(math.exp(y[i, c]) * y[i, c].item() for i in (2, 4) for c in range(3)) / (2 * 3)
    assert entropy_loss(y, labels).item() == pytest.approx(expected)
    assert entropy_loss(y, torch.zeros(5, dtype=torch.long)).item() == 0  # none unlabelled


def test_entropy_of_uniform_output_is_log_c_over_c():
    y = torch.full((4, 21), -math.log(21))
    assert entropy_loss(y, torch.full((4,), 255)).item() == pytest.approx(math.log(21) / 21)


def test_laplacian_term_is_trace(case):
    y, _ = case
    a = torch.rand(5, 5)
    s = (a + a.t()) / 2
    lap = torch.diag(s.sum(1)) - s
    expected = torch.trace(y.t() @ lap @ y) / 5
    assert laplacian_loss(y, lap.to_sparse()).item() == pytest.approx(expected.item(), rel=1e-5)
    # trace(YᵀLY) = ½ Σ_ij s_ij ||y_i - y_j||², by explicit loops
    direct = 0.5 * sum(s[i, j] * ((y[i] - y[j]) ** 2).sum() for i in range(5) for j in range(5)) / 5
    assert laplacian_loss(y, lap.to_sparse()).item() == pytest.approx(direct.item(), rel=1e-5)


def test_total_loss_weights_and_switches(case):
    y, labels = case
    lap = (2 * torch.eye(5) - torch.ones(5, 5) / 5).to_sparse()
    losses = total_loss(y, labels, lap)
    assert set(losses) == {"nll", "entropy", "laplacian", "total"}
    expected = partial_nll(y, labels) + 10 * entropy_loss(y, labels) + 0.01 * laplacian_loss(y, lap)
    assert losses["total"].item() == pytest.approx(expected.item())
    weighted = total_loss(y, labels, lap, ent_weight=2.0, lap_weight=0.5)
    assert weighted["total"].item() == pytest.approx(
        (losses["nll"] + 2 * losses["entropy"] + 0.5 * losses["laplacian"]).item())
    no_lap = total_loss(y, labels, None, use_lap=False)
    assert set(no_lap) == {"nll", "entropy", "total"}
    assert no_lap["total"].item() == pytest.approx((losses["nll"] + 10 * losses["entropy"]).item())
    plain = total_loss(y, labels, None, use_ent=False, use_lap=False)
    assert set(plain) == {"nll", "total"} and plain["total"].item() == pytest.approx(losses["nll"].item())
    with pytest.raises(ValueError):
        total_loss(y, labels, None)


def test_grid_laplacian_equals_the_sparse_trace():
    import numpy as np

    from GCN.bench import original_laplacian
    from GCN.laplacian import GridLaplacian

    image = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    y = torch.log_softmax(torch.randn(35, 4, dtype=torch.float64), 1)
    lap = torch.from_numpy(original_laplacian(image))
    expected = torch.trace(y.t() @ lap @ y) / 35
    grid = GridLaplacian(image, dtype=torch.float64)
    assert laplacian_loss(y, grid).item() == pytest.approx(expected.item(), rel=1e-10)
    assert total_loss(y, torch.zeros(35, dtype=torch.long), grid)["laplacian"].item() == pytest.approx(
        expected.item(), rel=1e-10)
    assert laplacian_loss(y, lap.to_sparse()).item() == pytest.approx(expected.item(), rel=1e-10)


def test_grid_laplacian_gradient_is_twice_l_y():
    import numpy as np

    from GCN.bench import original_laplacian
    from GCN.laplacian import GridLaplacian

    image = np.random.default_rng(4).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    lap = torch.from_numpy(original_laplacian(image))
    y = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    GridLaplacian(image, dtype=torch.float64).quadratic_form(y).backward()
    torch.testing.assert_close(y.grad, 2 * lap @ y.detach())
    assert torch.autograd.gradcheck(GridLaplacian(image, dtype=torch.float64).quadratic_form, (y,))


def test_columns_leave_the_padding_outputs_out_of_every_term():
    """Two images stacked with 3 and 5 outputs: with ``columns`` each image's losses (and their
    gradients) are those of its own outputs alone, as if its model had no others."""
    torch.manual_seed(1)
    scores = torch.randn(2, 6, 5)
    columns = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])[:, None]
    labels = torch.tensor([[0, 2, 255, 1, 255, 255], [4, 255, 0, 3, 255, 1]])
    images = [torch.randint(0, 256, (2, 3, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(k))
              for k in range(2)]
    laplacian = GridLaplacian(images, GridBatch([(2, 3), (2, 3)]))
    stacked = scores.clone().requires_grad_()
    log_probs = torch.log_softmax(stacked.masked_fill(~columns, float("-inf")), -1)
    losses = total_loss(log_probs, labels, laplacian, columns=columns)
    losses["total"].sum().backward()
    assert torch.isfinite(stacked.grad).all() and (stacked.grad[0, :, 3:] == 0).all()
    for b, k in enumerate((3, 5)):
        own = scores[b, :, :k].clone().requires_grad_()
        alone = total_loss(torch.log_softmax(own, -1), labels[b], GridLaplacian(images[b]))
        alone["total"].backward()
        for key in ("nll", "entropy", "laplacian", "total"):
            assert losses[key][b].item() == pytest.approx(alone[key].item(), rel=1e-5)
        torch.testing.assert_close(stacked.grad[b, :, :k], own.grad)

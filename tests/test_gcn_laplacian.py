import numpy as np
import pytest
import torch

from GCN.batch import GridBatch
from GCN.bench import original_laplacian
from GCN.laplacian import GridLaplacian


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)


def dense_laplacian(image, dtype=torch.float64, **kw):
    """The (N, N) matrix of GridLaplacian's L, read off as L I."""
    n = np.shape(image)[0] * np.shape(image)[1]
    return GridLaplacian(image, dtype=dtype, **kw).apply(torch.eye(n, dtype=dtype))


@pytest.mark.parametrize("shape", [(7, 9), (5, 4), (1, 6), (6, 1), (1, 1)])
def test_grid_laplacian_equals_the_original_dense_loop(shape):
    image = _image(shape, sum(shape))
    np.testing.assert_allclose(dense_laplacian(image).numpy(), original_laplacian(image), atol=1e-12)


def test_float32_default_float_input_and_parameters():
    image = _image((5, 4), 3)
    lap = dense_laplacian(image.astype(np.float32), dtype=torch.float32)  # float in 0..255 as well as uint8
    assert lap.dtype == torch.float32 and lap.device.type == "cpu"
    np.testing.assert_allclose(lap.numpy(), original_laplacian(image), atol=1e-6)
    kw = dict(rgb_scale=3.0, xy_scale=7.0, radius_rows=1, radius_cols=3)
    np.testing.assert_allclose(dense_laplacian(torch.from_numpy(image), **kw).numpy(),
                               original_laplacian(image, **kw), atol=1e-12)


def test_batched_images_each_get_their_own_laplacian():
    """Two images of different sizes on one padded grid: each image's block is its own L, and
    no weight reaches a padding node."""
    small, large = _image((3, 5), 7), _image((4, 3), 8)
    batch = GridBatch([small.shape[:2], large.shape[:2]])
    laplacian = GridLaplacian([small, large], batch, dtype=torch.float64)
    y = torch.randn(2, batch.num_nodes, 2, dtype=torch.float64) * batch.valid[..., None]
    ly = laplacian.apply(y.clone())
    for b, image in enumerate((small, large)):
        index = batch.node_index[b]
        torch.testing.assert_close(ly[b, index], dense_laplacian(image) @ y[b, index])
        assert (ly[b, ~batch.valid[b]] == 0).all()


def test_laplacian_properties():
    image = _image((7, 9))
    dense = dense_laplacian(image).numpy()
    np.testing.assert_allclose(dense, dense.T)
    np.testing.assert_allclose(dense.sum(1), 0, atol=1e-12)
    assert np.linalg.eigvalsh(dense).min() >= -1e-6
    # max(S, Sᵀ) turns the one-sided window (2 rows below, ±2 columns) into the full 5 x 5 one:
    # at most 24 neighbours plus the diagonal, reached by interior nodes.
    nonzeros = np.count_nonzero(dense, axis=1)
    assert nonzeros.max() == 25 and nonzeros.reshape(7, 9)[2:-2, 2:-2].min() == 25
    assert nonzeros.reshape(7, 9)[0, 0] == 9  # a corner: 3 x 3


def test_self_weight_cancels_on_the_diagonal():
    """L = D - S with S_ii = 1 counted in D: L_ii = Σ_j S_ij - 1 = Σ_{j≠i} S_ij = -Σ_{j≠i} L_ij."""
    image = _image((5, 4), 1)
    lap = dense_laplacian(image).numpy()
    off = lap - np.diag(np.diag(lap))
    np.testing.assert_allclose(np.diag(lap), -off.sum(1), atol=1e-12)
    # rebuild S from the formula on a pair and on the diagonal
    img, w = image.astype(np.float64) / 255, 4
    s = np.exp(-((img[1, 1] - img[2, 3]) ** 2).sum() / 12 - (1 + 4) / 20)
    assert -lap[1 * w + 1, 2 * w + 3] == pytest.approx(s) and -lap[2 * w + 3, 1 * w + 1] == pytest.approx(s)
    assert lap[0, 3] == 0  # 3 columns apart: outside the window


def test_weights_by_hand():
    image = np.zeros((1, 2, 3), np.uint8)
    image[0, 1] = (255, 0, 0)
    lap = dense_laplacian(image).numpy()
    s = np.exp(-1 / 12 - 1 / 20)  # colour distance² 1 (red channel), grid distance² 1
    np.testing.assert_allclose(lap, [[s, -s], [-s, s]])

import numpy as np
import pytest
import torch

from GCN.laplacian import colour_position_laplacian, dense_colour_position_laplacian


@pytest.mark.parametrize("shape", [(7, 9), (5, 4), (1, 6)])
def test_sparse_equals_the_original_dense_loop(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    sparse = colour_position_laplacian(image, dtype=torch.float64)
    np.testing.assert_allclose(sparse.to_dense().numpy(), dense_colour_position_laplacian(image), atol=1e-12)


def test_laplacian_properties():
    image = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    lap = colour_position_laplacian(image, dtype=torch.float64)
    dense = lap.to_dense().numpy()
    np.testing.assert_allclose(dense, dense.T)
    np.testing.assert_allclose(dense.sum(1), 0, atol=1e-12)
    assert np.linalg.eigvalsh(dense).min() > -1e-10
    # at most 24 neighbours besides the node itself (5 x 5 window), plus the diagonal
    assert (np.count_nonzero(dense, axis=1) <= 25).all() and np.count_nonzero(dense, axis=1).max() == 25


def test_weights_by_hand():
    image = np.zeros((1, 2, 3), np.uint8)
    image[0, 1] = (255, 0, 0)
    lap = colour_position_laplacian(image, dtype=torch.float64).to_dense().numpy()
    s = np.exp(-1 / 12 - 1 / 20)  # colour distance 1 (red channel), grid distance 1
    np.testing.assert_allclose(lap, [[s, -s], [-s, s]])
    assert lap.dtype == np.float64 and colour_position_laplacian(image).dtype == torch.float32

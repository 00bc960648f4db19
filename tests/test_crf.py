import numpy as np
import pytest

from wsgcn.crf import CRFParams, crf_label_map, dense_crf, label_unary, score_unary


def two_region_image(h=24, w=30):
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (200, 40, 40)
    image[:, w // 2:] = (30, 60, 220)
    return image


def test_label_unary_formula():
    labels = np.array([[0, 2], [1, 0]])
    u = label_unary(labels, 3, gt_prob=0.7)
    assert u.shape == (3, 2, 2)
    np.testing.assert_allclose(u[2, 0, 1], -np.log(0.7), rtol=1e-6)
    np.testing.assert_allclose(u[0, 0, 1], -np.log(0.3 / 2), rtol=1e-6)


def test_score_unary_clips():
    u = score_unary(np.array([[[1.0, 0.0]]]))
    np.testing.assert_allclose(u, [[[0.0, -np.log(1e-5)]]], rtol=1e-6)


def test_dense_crf_marginals():
    image = two_region_image()
    scores = np.random.default_rng(0).random((3, 24, 30)).astype(np.float32)
    q = dense_crf(image, score_unary(scores), CRFParams())
    assert q.shape == (3, 24, 30) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-4)


def test_crf_cleans_label_noise_along_colour_edges():
    image = two_region_image()
    truth = np.zeros((24, 30), np.int64)
    truth[:, 15:] = 1
    noisy = truth.copy()
    flip = np.random.default_rng(1).random(truth.shape) < 0.2
    noisy[flip] = 1 - noisy[flip]
    refined = crf_label_map(image, noisy, 2, CRFParams(3, 3, 50, 5, 10, 10))
    assert (refined == truth).mean() > 0.99 > (noisy == truth).mean()


def test_dense_crf_checks_inputs():
    with pytest.raises(ValueError, match="5x5 but the image is 24x30"):
        dense_crf(two_region_image(), np.zeros((2, 5, 5)), CRFParams())
    with pytest.raises(ValueError, match="NaN"):
        dense_crf(two_region_image(), np.full((2, 24, 30), np.nan), CRFParams())

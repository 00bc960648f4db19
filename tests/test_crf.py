import numpy as np
import pytest

from wsgcn.seg.crf import (
    CRFParams,
    crf_label_map,
    dense_crf,
    label_unary,
    probability_unary,
    score_unary,
    softmax_unary,
)


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


def softmax_of(scores):
    exp = np.exp(scores - scores.max(0, keepdims=True))
    return exp / exp.sum(0, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_unary_is_pydensecrfs_unary_from_softmax(dtype):
    """DeepLab/infer.py's unary, bit for bit: clipped to [1e-5, 1], the log in the input's dtype."""
    from pydensecrf.utils import unary_from_softmax

    prob = softmax_of(np.random.default_rng(0).normal(0, 6, (21, 7, 9))).astype(dtype)
    prob[:, 0, 0] = 0
    prob[3, 0, 0] = 1
    u = probability_unary(prob)
    assert u.shape == prob.shape and u.dtype == np.float32
    assert np.array_equal(u, unary_from_softmax(prob).reshape(prob.shape))
    assert u[3, 0, 0] == 0 and u[0, 0, 0] == np.float32(-np.log(dtype(1e-5)))


def test_softmax_unary_is_the_unary_of_the_scores_softmax():
    """GCN/CRF.py's unary: -log of the softmax over K of the Logit planes, clipped at 1e-5; the
    same for scores shifted by any constant per pixel."""
    scores = np.random.default_rng(1).normal(0, 8, (4, 6, 5)).astype(np.float32)
    u = softmax_unary(scores)
    assert u.dtype == np.float32
    assert np.array_equal(u, -np.log(np.maximum(softmax_of(scores), 1e-5)))
    np.testing.assert_allclose(softmax_unary(scores + 100 * np.arange(30).reshape(6, 5)), u, atol=1e-4)


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

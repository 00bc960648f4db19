"""Partial pseudo labels (docs/method.md §6) on hand-made CAMs."""
import numpy as np
import pytest

from GCN import partial_labels
from GCN.config import GCNConfig
from GCN.partial_labels import confident_region, partial_pseudo_labels


@pytest.fixture
def identity_crf(monkeypatch):
    """A CRF that returns its input scores (exp of minus the unary), to check the rules by hand."""
    monkeypatch.setattr(partial_labels, "dense_crf", lambda image, unary, params: np.exp(-unary))


def one_class_cams(values, cls=2):
    cams = np.zeros((20, 1, len(values)), np.float32)
    cams[cls, 0] = values
    return cams


def test_rules_by_hand(identity_crf):
    cams = one_class_cams([0.0, 0.05, 0.5, 0.85, 0.95, 1.0])  # bird: label 3
    image = np.zeros((1, 6, 3), np.uint8)
    labels, score_map = partial_pseudo_labels(image, cams, np.array([2]), GCNConfig())
    # weak/strong background labels nodes 0-1 background; the confident region keeps node 0
    # (bg^32 = 1 > 0.8) and, of the bird scores above 0.1 (.5 .85 .95 1), those above the value at
    # position int(4 * 0.7) = 2 (0.95): node 5 only; node 1's best score (0.95^32 = 0.19) < 0.8.
    assert labels.tolist() == [[0, 255, 255, 255, 255, 3]]
    assert score_map.shape == (21, 1, 6)
    np.testing.assert_allclose(score_map[0, 0, :2], [1.0, 0.95 ** 32], rtol=1e-5)
    np.testing.assert_allclose(score_map[3, 0], [1e-5, 0.05, 0.5, 0.85, 0.95, 1.0], rtol=1e-5)


def test_confident_ratio_widens_the_region(identity_crf):
    cams = one_class_cams([0.0, 0.05, 0.5, 0.85, 0.95, 1.0])
    image = np.zeros((1, 6, 3), np.uint8)
    labels, _ = partial_pseudo_labels(image, cams, np.array([2]), GCNConfig(confident_ratio=0.8))
    # position int(4 * 0.2) = 0: every bird score above 0.5 is confident (and above 0.8 in the map)
    assert labels.tolist() == [[0, 255, 255, 3, 3, 3]]


def test_class_without_strong_scores_gets_no_confident_node():
    cams = np.zeros((20, 2, 3), np.float32)
    cams[4, :, :2] = 0.05  # never above 0.1: the original crashes here
    cams[7] = [[0.9, 0.2, 0.0], [0.3, 0.95, 0.0]]
    region = confident_region(cams, np.array([4, 7]), [0, 5, 8], alpha_high=32, confident_ratio=0.3,
                              bg_threshold=0.8)
    # class 8 (cams[7]): scores > 0.1 sorted .2 .3 .9 .95, threshold at position 2 = 0.9 -> only 0.95;
    # background: bg^32 = 1 where both CAMs are 0 (column 2).
    assert region.tolist() == [[False, False, True], [False, True, True]]


def test_with_the_real_crf_labels_are_valid():
    rng = np.random.default_rng(0)
    cams = np.zeros((20, 12, 15), np.float32)
    cams[14, 2:9, 3:10] = rng.uniform(0.6, 1.0, (7, 7))
    image = rng.integers(0, 255, (12, 15, 3), dtype=np.uint8)
    labels, score_map = partial_pseudo_labels(image, cams, np.array([14]), GCNConfig())
    assert labels.dtype == np.uint8 and set(np.unique(labels).tolist()) <= {0, 15, 255}
    assert (labels == 15).any() and (labels == 0).any()
    assert ((labels == 15) <= (score_map.argmax(0) == 15)).all()

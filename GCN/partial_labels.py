"""Partial pseudo labels (docs/method.md §6): the confident part of the CAMs, on the stride-4 grid.

Two CRFs on [background score, CAMs] with a weak (alpha 4) and a strong (alpha 32)
background give confident foreground and confident background; a node keeps its label only
where the CAM is among its class's strongest (or, for background, the strong background score
is high), where the CRF score is at least ``score_threshold``, and where the label is the
argmax of the combined score map.  Everything else is 255, the nodes the GCN must label.
"""
import numpy as np

from wsgcn.seg.crf import dense_crf, score_unary
from wsgcn.seg.dataset import IGNORE_INDEX


def crf_scores(image, cams, classes, alpha, crf_params):
    """CRF marginals of [(1 - max CAM)^alpha, CAMs of ``classes``], spread onto C planes.

    image (h, w, 3) uint8; cams (C-1, h, w) with zeros for absent classes; classes (K,) present
    object classes.  Returns (C, h, w) float32, zero on the planes of absent classes.
    """
    present = cams[classes]
    bg = (1 - present.max(0, initial=0)) ** alpha
    q = dense_crf(image, score_unary(np.concatenate([bg[None], present])), crf_params)
    scores = np.zeros((len(cams) + 1,) + cams.shape[1:], np.float32)
    scores[0] = q[0]
    scores[np.asarray(classes) + 1] = q[1:]
    return scores


def confident_region(cams, classes, fg_classes, alpha_high, confident_ratio, bg_threshold):
    """Nodes where the raw CAMs are confident (h, w) bool.

    A foreground class of ``fg_classes`` (VOC indices) keeps the nodes where its CAM is the
    argmax of [bg^alpha_high, CAMs] and above the ``1 - confident_ratio`` quantile of its scores
    above 0.1 (a class with no score above 0.1 keeps none).  Background (when 0 is in
    ``fg_classes``) keeps the argmax-background nodes whose bg^alpha_high exceeds ``bg_threshold``.
    """
    scores = np.concatenate([((1 - cams[classes].max(0, initial=0)) ** alpha_high)[None], cams])
    winner = scores.argmax(0)
    region = np.zeros(cams.shape[1:], bool)
    for c in fg_classes:
        own = np.where(winner == c, scores[c], 0)
        if c == 0:
            region |= own > bg_threshold
            continue
        strong = np.sort(own[own > 0.1])
        if strong.size == 0:
            continue
        region |= own > strong[min(int(strong.size * (1.0 - confident_ratio)), strong.size - 1)]
    return region


def partial_pseudo_labels(image, cams, classes, cfg):
    """Partial labels of one image on the grid.

    image (h, w, 3) uint8 (the image resized to the grid); cams (20, h, w) float;
    classes (K,) object-class indices.  Returns (labels (h, w) uint8 with 255 = unlabelled,
    score map (21, h, w) float32: strong-background CRF's background, weak-background CRF's classes).
    """
    weak = crf_scores(image, cams, classes, cfg.alpha_low, cfg.partial_crf)
    strong = crf_scores(image, cams, classes, cfg.alpha_high, cfg.partial_crf)
    weak_label, strong_label = weak.argmax(0), strong.argmax(0)
    labels = np.where(weak_label == 0, IGNORE_INDEX, weak_label)
    labels[strong_label == 0] = 0

    sure = confident_region(cams, classes, np.unique(weak_label), cfg.alpha_high, cfg.confident_ratio,
                            cfg.score_threshold)
    score_map = np.concatenate([strong[:1], weak[1:]])
    labels[(score_map.max(0) < cfg.score_threshold) | ~sure] = IGNORE_INDEX
    # Vote: a node keeps its label only where the score map agrees.
    labels = np.where(score_map.argmax(0) == labels, labels, IGNORE_INDEX)
    return labels.astype(np.uint8), score_map

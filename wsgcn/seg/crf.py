"""Fully connected CRF (Krähenbühl & Koltun) on an image, the one wrapper every step uses.

Four steps run it with their own unaries and kernels: cam_to_ir_label (unary from labels,
:func:`crf_label_map`), make_dataset (unary from clipped scores, :func:`score_unary`), GCN/CRF.py
(unary from a softmax of the GCN's scores, :func:`softmax_unary`) and DeepLab/infer.py (unary
from DeepLab's softmax, :func:`probability_unary`).  Each passes a :class:`CRFParams` with its
published values.
"""
from dataclasses import dataclass

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels


@dataclass(frozen=True)
class CRFParams:
    """Kernel parameters: Gaussian (position) and bilateral (position + colour) terms."""
    gauss_sxy: float = 3
    gauss_compat: float = 3
    bilateral_sxy: float = 50
    bilateral_srgb: float = 5
    bilateral_compat: float = 10
    iterations: int = 10


def dense_crf(image, unary, params):
    """Mean-field inference of a dense CRF.

    image: (H, W, 3) uint8 RGB.  unary: (K, H, W) energies (-log probabilities).
    Returns the marginals Q: (K, H, W) float32, summing to 1 over K.
    """
    image = np.asarray(image)
    unary = np.asarray(unary, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"CRF image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    k, h, w = unary.shape
    if (h, w) != image.shape[:2]:
        raise ValueError(f"CRF unary is {h}x{w} but the image is {image.shape[0]}x{image.shape[1]}")
    if not np.isfinite(unary).all():
        raise ValueError("CRF unary holds NaN or Inf")
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(k, -1)))
    crf.addPairwiseGaussian(sxy=params.gauss_sxy, compat=params.gauss_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.array(image, order="C"), compat=params.bilateral_compat)  # a writable copy
    q = crf.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(k, h, w)


def label_unary(labels, n_labels, gt_prob=0.7):
    """(K, H, W) unary from a hard label map (H, W) in 0..K-1: each pixel's label has probability
    ``gt_prob``, the others share the rest (IRNet's ``unary_from_labels``, no 'unsure' label)."""
    labels = np.asarray(labels)
    h, w = labels.shape
    return unary_from_labels(labels.ravel(), n_labels, gt_prob=gt_prob, zero_unsure=False).reshape(n_labels, h, w)


def score_unary(scores, eps=1e-5):
    """(K, H, W) unary -log(max(score, eps)) from scores that need not sum to one."""
    return -np.log(np.maximum(np.asarray(scores, dtype=np.float32), eps))


def probability_unary(prob, eps=1e-5):
    """(K, H, W) float32 unary -log(p) from probabilities over K, clipped to [eps, 1] and taken in
    their own dtype (pydensecrf's ``unary_from_softmax``, as kazuto1011's DenseCRF)."""
    return -np.log(np.clip(prob, eps, 1.0)).astype(np.float32)


def softmax_unary(scores, eps=1e-5):
    """(K, H, W) unary from scores through their softmax over K (WSGCN's CRF of the GCN's Logits)."""
    exp = np.exp(scores - scores.max(0, keepdims=True))  # shifted: no overflow
    return probability_unary(exp / exp.sum(0, keepdims=True), eps)


def crf_label_map(image, labels, n_labels, params, gt_prob=0.7):
    """Refine a hard label map (H, W) with the CRF; returns the (H, W) int64 argmax."""
    return dense_crf(image, label_unary(labels, n_labels, gt_prob), params).argmax(0)

"""WSGCN's per-image loss (SPEC §7) on log-probabilities Y (N, C) and partial labels (N,)
(0 = background, 1..20 = classes, 255 = unlabelled)."""
import torch
import torch.nn.functional as F

from wsgcn.voc import IGNORE_INDEX


def _mean_nll(log_probs, labels, mask):
    if not mask.any():
        return log_probs.new_zeros(())
    return F.nll_loss(log_probs[mask], labels[mask])


def partial_nll(log_probs, labels):
    """Mean NLL over foreground-labelled nodes + mean NLL over background-labelled nodes (an
    empty group adds 0): background, usually most of the labels, does not drown the objects."""
    foreground = (labels != IGNORE_INDEX) & (labels != 0)
    return _mean_nll(log_probs, labels, foreground) + _mean_nll(log_probs, labels, labels == 0)


def entropy_loss(log_probs, labels):
    """Mean of -p log p over the unlabelled nodes and all C outputs (0 if every node is labelled)."""
    unlabelled = labels == IGNORE_INDEX
    if not unlabelled.any():
        return log_probs.new_zeros(())
    y = log_probs[unlabelled]
    return -(y.exp() * y).mean()


def laplacian_loss(log_probs, laplacian):
    """trace(Yᵀ L Y) / N for a sparse (N, N) Laplacian L, without forming Yᵀ L Y."""
    ly = torch.sparse.mm(laplacian, log_probs) if laplacian.is_sparse else laplacian @ log_probs
    return (log_probs * ly).sum() / log_probs.shape[0]


def total_loss(log_probs, labels, laplacian=None, use_ent=True, use_lap=True, ent_weight=10.0, lap_weight=0.01):
    """Dict of the terms and ``total`` = nll + ent_weight * entropy + lap_weight * Laplacian term."""
    losses = {"nll": partial_nll(log_probs, labels)}
    total = losses["nll"]
    if use_ent:
        losses["entropy"] = entropy_loss(log_probs, labels)
        total = total + ent_weight * losses["entropy"]
    if use_lap:
        losses["laplacian"] = laplacian_loss(log_probs, laplacian)
        total = total + lap_weight * losses["laplacian"]
    losses["total"] = total
    return losses

"""WSGCN's per-image loss (docs/method.md §7) on log-probabilities Y (N, C) and partial labels
(N,) int64 (0 = background, 1..20 = classes, 255 = unlabelled).

A batch of images trained together (:class:`GCN.batch.GridBatch`) is Y (B, N, C) and labels
(B, N), with ``PADDING`` on the nodes that are not part of an image; every loss is then (B,),
each image's own.  Empty
groups are handled by masked sums over clamped counts rather than ``if mask.any()``, so a
training step on a GPU never waits on a host synchronisation.
"""
import torch

from GCN.batch import PADDING
from wsgcn.seg.dataset import IGNORE_INDEX


def _masked_mean(values, mask, count_per_row=1):
    """Sum of values over mask's rows / (number of rows * count_per_row), per image; 0 for an
    empty mask.  values (..., N) or (..., N, C), mask (..., N) -> (...)."""
    node_dim = mask.dim() - 1
    if values.dim() > mask.dim():
        mask = mask.unsqueeze(-1)
    total = torch.where(mask, values, values.new_zeros(())).flatten(node_dim).sum(-1)
    return total / (mask.flatten(node_dim).sum(-1) * count_per_row).clamp(min=1)


def partial_nll(log_probs, labels, ignore_index=IGNORE_INDEX):
    """Mean NLL over foreground-labelled nodes + mean NLL over background-labelled nodes.

    log_probs (..., N, C) float, labels (..., N) int64. Two separate means, so the background,
    usually most of the labels, does not drown the objects; a group with no node adds 0.
    Returns (...): a scalar for one image.
    """
    labelled = (labels != ignore_index) & (labels != PADDING)
    # 255 is no valid column: gather class 0 there, the masks drop it anyway.
    nll = -log_probs.gather(-1, torch.where(labelled, labels, 0).unsqueeze(-1)).squeeze(-1)
    foreground = labelled & (labels != 0)
    return _masked_mean(nll, foreground) + _masked_mean(nll, labels == 0)


def entropy_loss(log_probs, labels, ignore_index=IGNORE_INDEX, num_outputs=None):
    """Mean of -p log p over the unlabelled nodes and all C outputs, p = exp(log_probs).

    log_probs (..., N, C) float, labels (..., N) int64; = sum / (n_unlabelled * C), 0 if none.
    ``num_outputs`` (...,): each image's own number of outputs to divide by instead of C, when
    it has fewer (the others must hold log p = 0, see :func:`total_loss`).
    """
    neg_p_log_p = -log_probs.exp() * log_probs
    count = log_probs.shape[-1] if num_outputs is None else num_outputs
    return _masked_mean(neg_p_log_p, labels == ignore_index, count)


def laplacian_loss(log_probs, laplacian, num_nodes=None):
    """trace(Yᵀ L Y) / N for Y = log_probs (N, C) and L (N, N): sparse, dense (tests), or any
    object with a ``quadratic_form(Y)`` such as :class:`GCN.laplacian.GridLaplacian` (which
    also takes a batch (B, N, C) and gives (B,); ``num_nodes`` (B,) are then the images' N).

    Only the diagonal of Yᵀ L Y is needed, so (Y * (L Y)).sum() avoids the (C, C) product and
    never densifies L.
    """
    num_nodes = log_probs.shape[-2] if num_nodes is None else num_nodes
    if not isinstance(laplacian, torch.Tensor):
        return laplacian.quadratic_form(log_probs) / num_nodes
    ly = torch.sparse.mm(laplacian, log_probs) if laplacian.is_sparse else laplacian @ log_probs
    return (log_probs * ly).sum() / num_nodes


def total_loss(log_probs, labels, laplacian=None, use_ent=True, use_lap=True, ent_weight=10.0,
               lap_weight=0.01, columns=None):
    """nll + use_ent * ent_weight * entropy + use_lap * lap_weight * Laplacian term.

    log_probs (N, C) or (B, N, C), labels (N,) or (B, N) int64 (see the module's doc),
    laplacian (see :func:`laplacian_loss`; needed only when use_lap).  ``columns`` (B, 1, C)
    bool: each image's own outputs, when some images have fewer than C (the others hold
    log p = -inf): those are left out of every term, as if the image's model had only its own.
    Returns a dict of scalar or (B,) tensors: "nll", "entropy" / "laplacian" when switched on,
    "total".
    """
    num_outputs = None
    if columns is not None:
        log_probs = torch.where(columns, log_probs, 0.0)  # p log p = 0 and no smoothness term there
        num_outputs = columns.sum((-2, -1))
    losses = {"nll": partial_nll(log_probs, labels)}
    total = losses["nll"]
    if use_ent:
        losses["entropy"] = entropy_loss(log_probs, labels, num_outputs=num_outputs)
        total = total + ent_weight * losses["entropy"]
    if use_lap:
        if laplacian is None:
            raise ValueError("use_lap=True needs a Laplacian")
        losses["laplacian"] = laplacian_loss(log_probs, laplacian, (labels != PADDING).sum(-1))
        total = total + lap_weight * losses["laplacian"]
    losses["total"] = total
    return losses

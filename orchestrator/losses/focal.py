"""Sigmoid focal loss (Lin et al., 2017) for multi-label classification heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    num_boxes: float,
    *,
    alpha: float = 0.75,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal loss of independent per-class sigmoids.

    ``logits`` and ``targets`` (0/1 floats) share a shape, e.g. ``(B, Q, C)``. Each element
    contributes ``a_t * (1 - p_t)**gamma * BCE(logit, t)`` with ``p_t = p`` for positives and
    ``1 - p`` for negatives, ``a_t = alpha`` for positives and ``1 - alpha`` for negatives.
    Reduction: sum over all elements divided by ``num_boxes`` (clamped to >= 1), so the
    loss does not grow with the number of queries that are background.
    """
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = alpha_t * (1 - p_t) ** gamma * bce
    return loss.sum() / max(num_boxes, 1.0)

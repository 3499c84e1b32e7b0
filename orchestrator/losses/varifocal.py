"""Varifocal loss (Zhang et al., 2021), the classification loss of RT-DETR."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def varifocal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    num_boxes: float,
    *,
    alpha: float = 0.75,
    gamma: float = 2.0,
) -> torch.Tensor:
    """IoU-aware classification loss.

    ``logits``, ``labels`` and ``scores`` share a shape (``(B, Q, C)``): ``labels`` is 1 at
    ``[matched query, its target's class]`` and 0 elsewhere, ``scores`` is the IoU between
    that query's box and its target at the same places (0 elsewhere). Positives are trained
    towards their IoU with weight = that IoU; negatives towards 0 with the focal
    down-weighting ``alpha * p**gamma``:

    ``weight = alpha * p**gamma * (1 - label) + score``,  ``loss = weight * BCE(logit, score)``

    with ``p = sigmoid(logit)`` taken without gradient (the weight is a constant, as in
    RT-DETR). Reduction: sum over all elements / ``num_boxes`` (clamped to >= 1).
    """
    prob = logits.detach().sigmoid()
    target = labels * scores
    weight = alpha * prob.pow(gamma) * (1 - labels) + target
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
    return loss.sum() / max(num_boxes, 1.0)

"""Plain per-class sigmoid binary cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_boxes: float
) -> torch.Tensor:
    """``BCE(logit, target)`` for every element of ``(B, Q, C)`` logits with 0/1 targets.

    Reduction: sum over all elements / ``num_boxes`` (clamped to >= 1), the same scale as
    :func:`~orchestrator.losses.focal.sigmoid_focal_loss` so weights stay comparable.
    """
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return loss.sum() / max(num_boxes, 1.0)

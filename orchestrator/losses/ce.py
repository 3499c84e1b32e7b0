"""Softmax cross-entropy with an explicit background ("no object") class, as DETR."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def background_class_weights(
    num_classes: int, bg_weight: float, *, device: torch.device | None = None
) -> torch.Tensor:
    """``[1] * num_classes + [bg_weight]``: the class weights of DETR's ``eos_coef``."""
    weights = torch.ones(num_classes + 1, device=device)
    weights[-1] = bg_weight
    return weights


def softmax_ce_loss(
    logits: torch.Tensor, target_classes: torch.Tensor, bg_weight: float
) -> torch.Tensor:
    """Cross-entropy over ``num_classes + 1`` logits, the last index being background.

    ``logits``: ``(B, Q, K + 1)``; ``target_classes``: ``(B, Q)`` long, ``K`` for unmatched
    queries. Each query's loss is scaled by its target class weight (1 for objects,
    ``bg_weight`` for background) and the reduction is the *weighted mean*
    ``sum(w_i * l_i) / sum(w_i)``, which is what DETR computes (``F.cross_entropy`` with
    ``weight=``); unlike the sigmoid losses it is therefore not divided by the box count.
    """
    num_classes = logits.shape[-1] - 1
    weights = background_class_weights(num_classes, bg_weight, device=logits.device).to(
        logits.dtype
    )
    return F.cross_entropy(logits.flatten(0, -2), target_classes.flatten(), weight=weights)

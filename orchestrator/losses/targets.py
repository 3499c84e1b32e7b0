"""Classification targets built from class indices."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def object_one_hot(classes: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """0/1 targets of a sigmoid head, shaped and typed like ``logits`` ``(..., K)``, from
    ``classes`` ``(...)`` whose value ``K`` is background (a row of zeros)."""
    num_classes = logits.shape[-1]
    return F.one_hot(classes, num_classes + 1)[..., :num_classes].to(logits.dtype)

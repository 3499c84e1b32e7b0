"""Feature distillation: L1 between a student's embedding and a frozen teacher's (RAM)."""

from __future__ import annotations

from typing import Literal

import torch


def embedding_l1_loss(
    student: torch.Tensor, teacher: torch.Tensor, reduction: Literal["sum", "mean"] = "mean"
) -> torch.Tensor:
    """Mean absolute difference over the embedding dimension of each sample ``(B, D)``,
    then summed (``sum``) or averaged (``mean``) over the samples.

    ``sum`` keeps a loss that also sums over samples (RAM's ASL) on the same per-sample
    footing, so the trial loop's rescaling of sum-reduced losses treats both alike.
    """
    per_sample = (student - teacher.detach()).abs().mean(dim=-1)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()

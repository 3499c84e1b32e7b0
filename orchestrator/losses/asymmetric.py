"""Asymmetric loss (ASL, Ridnik et al. 2021) for multi-label tagging, as RAM trains its tags."""

from __future__ import annotations

from typing import Literal

import torch


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_neg: float = 7.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    reduction: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """ASL of ``logits`` ``(B, T)`` against 0/1 ``targets`` of the same shape.

    With ``p = sigmoid(x)`` and the shifted negative probability ``p_m = max(p - clip, 0)``::

        L+ = (1 - p)^gamma_pos * -log(max(p, eps))           for y = 1
        L- = p_m^gamma_neg * -log(max(1 - p_m, eps))          for y = 0

    Negatives are focused harder than positives (``gamma_neg > gamma_pos``) and the easiest
    ones (``p < clip``) are dropped entirely, which counters the many-negatives imbalance of
    a large tag vocabulary. The focusing weights are differentiated, as in the reference
    implementation RAM uses. ``sum`` adds every element (RAM: the loss grows with batch size
    and vocabulary); ``mean`` averages them.
    """
    targets = targets.to(logits.dtype)
    prob = torch.sigmoid(logits)
    # probability shifting: 1 - p_m = min(1 - p + clip, 1)
    not_prob = (1 - prob + clip).clamp(max=1) if clip > 0 else 1 - prob
    positive = targets * torch.log(prob.clamp(min=eps))
    negative = (1 - targets) * torch.log(not_prob.clamp(min=eps))
    loss = positive + negative
    if gamma_neg > 0 or gamma_pos > 0:
        # p_t: the probability of the right answer; (1 - p_t)^gamma down-weights easy ones
        p_t = prob * targets + not_prob * (1 - targets)
        gamma = gamma_pos * targets + gamma_neg * (1 - targets)
        loss = loss * torch.pow(1 - p_t, gamma)
    return -(loss.sum() if reduction == "sum" else loss.mean())

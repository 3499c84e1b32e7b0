"""The four loss terms of Faster R-CNN, kept per image so either reduction can be applied.

Each term is a per-image sum of element losses and a per-image normaliser (MMDetection's
``avg_factor``: the number of sampled anchors/RoIs, or what the classification loss's
``sum_and_count`` says, for ``ce`` the sum of the sampled RoIs' class weights, as
``F.cross_entropy(weight=...)`` averages). ``mean`` divides the
micro-batch's total by its total normaliser; ``sum`` normalises each image, then sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from orchestrator.config.classification import CLASSIFICATION_LOSSES, ClassificationLoss


@dataclass
class Term:
    """One loss term of a micro-batch: ``sums[b]`` and ``counts[b]`` of image ``b``."""

    sums: torch.Tensor
    counts: torch.Tensor

    def reduce(self, reduction: Literal["mean", "sum"]) -> torch.Tensor:
        """The term as a scalar; an image (or batch) with nothing sampled contributes 0."""
        if reduction == "mean":
            return self.sums.sum() / self.counts.sum().clamp(min=1.0)
        return (self.sums / self.counts.clamp(min=1.0)).sum()


def _term(sums: Sequence[torch.Tensor], counts: Sequence[float | torch.Tensor]) -> Term:
    return Term(
        torch.stack(list(sums)),
        torch.stack(
            [torch.as_tensor(c, dtype=sums[0].dtype, device=sums[0].device) for c in counts]
        ),
    )


def objectness_term(logits: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> Term:
    """RPN objectness: binary cross-entropy of each image's sampled anchor ``logits`` against
    ``labels`` (1 object, 0 background), normalised by the number sampled."""
    sums = [
        F.binary_cross_entropy_with_logits(x, y.to(x.dtype), reduction="sum")
        for x, y in zip(logits, labels, strict=True)
    ]
    return _term(sums, [float(y.numel()) for y in labels])


def l1_term(
    deltas: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    num_sampled: Sequence[int],
) -> Term:
    """Box regression: L1 between the positives' predicted and target deltas, summed over
    coordinates and normalised by *all* sampled candidates of the image (MMDetection's
    ``avg_factor``), so the positive fraction also sets the box term's scale."""
    sums = [(d - t).abs().sum() for d, t in zip(deltas, targets, strict=True)]
    return _term(sums, [float(n) for n in num_sampled])


def box_classification_term(
    logits: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    *,
    kind: str | ClassificationLoss,
    num_classes: int,
    bg_weight: float = 1.0,
    gamma: float = 2.0,
    alpha: float = 0.25,
) -> Term:
    """The box head's classification of each image's sampled RoIs; ``labels`` hold a class
    index, ``num_classes`` for background.

    ``kind`` is the loss (:mod:`orchestrator.config.classification`), or its name with its
    settings among ``bg_weight``/``gamma``/``alpha``. Each image contributes the loss's
    ``sum_and_count``: ``ce`` (softmax over ``num_classes + 1`` logits, background weighted
    by ``bg_weight``) is normalised by the sum of the weights; sigmoid losses such as
    ``focal`` (a background RoI's target is all zeros) by the number of sampled RoIs.
    """
    if isinstance(kind, str):
        model = CLASSIFICATION_LOSSES.get(kind)
        given = {"bg_weight": bg_weight, "gamma": gamma, "alpha": alpha}
        kind = model.model_validate({k: v for k, v in given.items() if k in model.model_fields})
    sums, counts = [], []
    for x, y in zip(logits, labels, strict=True):
        total, count = kind.sum_and_count(x, y)
        sums.append(total)
        counts.append(count)
    return _term(sums, counts)

"""``vfl``: varifocal loss (Zhang et al., 2021), RT-DETR's classification loss."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from orchestrator.config.classification import CLASSIFICATION_LOSSES, ClassificationLoss

if TYPE_CHECKING:
    import torch


@CLASSIFICATION_LOSSES.register
class Varifocal(ClassificationLoss):
    """:func:`~orchestrator.losses.varifocal_loss`: a matched query is trained towards the
    IoU its box reaches (``quality``), a quality score."""

    kind: Literal["vfl"] = "vfl"
    tasks: ClassVar[tuple[str, ...]] = ("rtdetr",)
    section: ClassVar[str | None] = "focal"
    needs_quality: ClassVar[bool] = True

    gamma: float = Field(default=2.0, ge=0)
    alpha: float = Field(default=0.75, gt=0, lt=1)

    def loss(
        self,
        logits: torch.Tensor,
        classes: torch.Tensor,
        *,
        num_boxes: float,
        quality: torch.Tensor | None = None,
    ) -> torch.Tensor:
        import torch

        from orchestrator.losses import object_one_hot, varifocal_loss

        if quality is None:
            raise ValueError("vfl needs the matched boxes' IoU (quality)")
        one_hot = object_one_hot(classes, logits)
        # the IoU at [matched query, its class] only; exact zeros elsewhere
        scores = torch.where(one_hot > 0, quality.unsqueeze(-1).to(logits.dtype), 0.0)
        return varifocal_loss(
            logits, one_hot, scores, num_boxes, alpha=self.alpha, gamma=self.gamma
        )

"""``focal``: sigmoid focal loss (Lin et al., 2017)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from orchestrator.config.classification import CLASSIFICATION_LOSSES, ClassificationLoss

if TYPE_CHECKING:
    import torch


@CLASSIFICATION_LOSSES.register
class Focal(ClassificationLoss):
    """:func:`~orchestrator.losses.sigmoid_focal_loss` against one-hot targets."""

    kind: Literal["focal"] = "focal"
    tasks: ClassVar[tuple[str, ...]] = ("rtdetr", "detector")
    section: ClassVar[str | None] = "focal"

    gamma: float = Field(default=2.0, ge=0)
    alpha: float = Field(default=0.25, gt=0, lt=1)

    def loss(
        self,
        logits: torch.Tensor,
        classes: torch.Tensor,
        *,
        num_boxes: float,
        quality: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from orchestrator.losses import object_one_hot, sigmoid_focal_loss

        one_hot = object_one_hot(classes, logits)
        return sigmoid_focal_loss(logits, one_hot, num_boxes, alpha=self.alpha, gamma=self.gamma)

"""``bce``: plain per-class sigmoid binary cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from orchestrator.config.classification import CLASSIFICATION_LOSSES, ClassificationLoss

if TYPE_CHECKING:
    import torch


@CLASSIFICATION_LOSSES.register
class BCE(ClassificationLoss):
    """:func:`~orchestrator.losses.sigmoid_bce_loss` against one-hot targets."""

    kind: Literal["bce"] = "bce"
    tasks: ClassVar[tuple[str, ...]] = ("rtdetr",)

    def loss(
        self,
        logits: torch.Tensor,
        classes: torch.Tensor,
        *,
        num_boxes: float,
        quality: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from orchestrator.losses import object_one_hot, sigmoid_bce_loss

        return sigmoid_bce_loss(logits, object_one_hot(classes, logits), num_boxes)

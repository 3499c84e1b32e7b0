"""``ce``: softmax cross-entropy with a background (no-object) class, as DETR."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from orchestrator.config.classification import CLASSIFICATION_LOSSES, ClassificationLoss

if TYPE_CHECKING:
    import torch


@CLASSIFICATION_LOSSES.register
class CE(ClassificationLoss):
    """Cross-entropy over ``num_classes + 1`` logits, background weighted by ``bg_weight``
    and the result the weighted mean (``F.cross_entropy(weight=...)``), not divided by the
    box count."""

    kind: Literal["ce"] = "ce"
    tasks: ClassVar[tuple[str, ...]] = ("rtdetr", "detector")
    section: ClassVar[str | None] = "ce"
    background_logit: ClassVar[bool] = True
    match_cost: ClassVar[Literal["focal", "softmax"]] = "softmax"

    bg_weight: float = Field(default=1.0, gt=0, le=1)

    def loss(
        self,
        logits: torch.Tensor,
        classes: torch.Tensor,
        *,
        num_boxes: float,
        quality: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from orchestrator.losses import softmax_ce_loss

        return softmax_ce_loss(logits, classes, self.bg_weight)

    def sum_and_count(
        self, logits: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The weighted sum and the sum of the weights (what the mean divides by)."""
        import torch.nn.functional as F

        from orchestrator.losses import background_class_weights

        weights = background_class_weights(
            logits.shape[-1] - 1, self.bg_weight, device=logits.device
        ).to(logits.dtype)
        return F.cross_entropy(logits, classes, weight=weights, reduction="sum"), weights[
            classes
        ].sum()

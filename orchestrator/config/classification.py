"""The classification-loss extension point: ``loss.cls`` of a detection task. Torch-free.

A classification loss is one registered :class:`ClassificationLoss` subclass: a pydantic
model whose fields are its settings (read from the task's ``loss.<section>``), whose class
variables answer what the head and the matcher need to know, and whose methods compute the
loss (torch, imported inside them). The built-ins are the modules of
:mod:`orchestrator.losses.classification`; see docs/extending.md.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

from orchestrator.config.base import StrictModel
from orchestrator.config.registry import KindRegistry

if TYPE_CHECKING:
    import torch


class ClassificationLoss(StrictModel):
    """Base of a ``loss.cls`` entry.

    Targets are class indices: ``classes`` has the shape of ``logits`` without the last
    dimension, ``num_classes`` (the number of object classes) marking background (an
    unmatched query, a negative RoI).
    """

    kind: str
    #: the task kinds whose ``loss.cls`` accepts this loss
    tasks: ClassVar[tuple[str, ...]] = ()
    #: the ``loss.<section>`` of the task that holds this loss's settings (None: it has none)
    section: ClassVar[str | None] = None
    #: True: softmax over ``num_classes + 1`` logits, the last one background (no object);
    #: False: one sigmoid per class, background is "no class fires"
    background_logit: ClassVar[bool] = False
    #: the Hungarian matcher's class cost (:func:`orchestrator.losses.classification_cost`)
    match_cost: ClassVar[Literal["focal", "softmax"]] = "focal"
    #: True: :meth:`loss` needs ``quality`` (each matched query's IoU with its target)
    needs_quality: ClassVar[bool] = False

    def num_logits(self, num_classes: int) -> int:
        """Width of the classifier for ``num_classes`` object classes."""
        return num_classes + (1 if self.background_logit else 0)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-object-class scores ``(..., num_classes)`` for evaluation."""
        # the background column is not a detection class
        return logits.softmax(-1)[..., :-1] if self.background_logit else logits.sigmoid()

    @abstractmethod
    def loss(
        self,
        logits: torch.Tensor,
        classes: torch.Tensor,
        *,
        num_boxes: float,
        quality: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of a set prediction (DETR's scale): per-class sigmoid losses are summed
        and divided by ``num_boxes`` (the target boxes of the batch, clamped to >= 1);
        ``quality`` (shape of ``classes``) is given when :attr:`needs_quality`."""

    def sum_and_count(
        self, logits: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The summed loss of sampled candidates and its normaliser (MMDetection's
        ``avg_factor``): by default the number of candidates."""
        return self.loss(logits, classes, num_boxes=1.0), float(classes.numel())


#: ``loss.cls`` -> its model (which computes the loss)
CLASSIFICATION_LOSSES: KindRegistry[ClassificationLoss] = KindRegistry(
    "classification loss", ClassificationLoss, discover=("orchestrator.losses.classification",)
)


def classification_names(task: str) -> list[str]:
    """The registered losses that ``task``'s ``loss.cls`` accepts, sorted."""
    return sorted(name for name, cls in CLASSIFICATION_LOSSES.items() if task in cls.tasks)


def check_classification(name: str, task: str) -> str:
    """``name`` if ``task`` accepts it; else ValueError listing what it accepts."""
    names = classification_names(task)
    if name not in names:
        quoted = [repr(n) for n in names]
        listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        raise ValueError(f"Input should be {listed}")
    return name


def build_classification(name: str, loss_config: BaseModel) -> ClassificationLoss:
    """The loss ``name`` with its settings from ``loss_config.<section>``."""
    cls = CLASSIFICATION_LOSSES.get(name)
    settings: dict[str, Any] = {}
    if cls.section is not None:
        settings = getattr(loss_config, cls.section).model_dump()
    return cls.model_validate(settings)

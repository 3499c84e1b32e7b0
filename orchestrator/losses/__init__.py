"""Detection and tagging losses and the Hungarian matcher: pure torch functions shared by tasks.

The functions are imported on first access, so the torch-free classification-loss models of
:mod:`orchestrator.losses.classification` can be looked up (``orchestrate validate``)
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.losses.asymmetric import asymmetric_loss
    from orchestrator.losses.bce import sigmoid_bce_loss
    from orchestrator.losses.boxes import (
        box_cxcywh_to_xyxy,
        box_xyxy_to_cxcywh,
        elementwise_giou,
        elementwise_iou,
        giou_box_loss,
        l1_box_loss,
        pairwise_giou,
        pairwise_iou,
    )
    from orchestrator.losses.ce import background_class_weights, softmax_ce_loss
    from orchestrator.losses.distill import embedding_l1_loss
    from orchestrator.losses.focal import sigmoid_focal_loss
    from orchestrator.losses.matcher import classification_cost, hungarian_match
    from orchestrator.losses.targets import object_one_hot
    from orchestrator.losses.varifocal import varifocal_loss

#: public name -> the module that defines it
_MODULES = {
    "asymmetric_loss": "asymmetric",
    "background_class_weights": "ce",
    "box_cxcywh_to_xyxy": "boxes",
    "box_xyxy_to_cxcywh": "boxes",
    "classification_cost": "matcher",
    "elementwise_giou": "boxes",
    "elementwise_iou": "boxes",
    "embedding_l1_loss": "distill",
    "giou_box_loss": "boxes",
    "hungarian_match": "matcher",
    "l1_box_loss": "boxes",
    "object_one_hot": "targets",
    "pairwise_giou": "boxes",
    "pairwise_iou": "boxes",
    "sigmoid_bce_loss": "bce",
    "sigmoid_focal_loss": "focal",
    "softmax_ce_loss": "ce",
    "varifocal_loss": "varifocal",
}

__all__ = [
    "asymmetric_loss",
    "background_class_weights",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "classification_cost",
    "elementwise_giou",
    "elementwise_iou",
    "embedding_l1_loss",
    "giou_box_loss",
    "hungarian_match",
    "l1_box_loss",
    "object_one_hot",
    "pairwise_giou",
    "pairwise_iou",
    "sigmoid_bce_loss",
    "sigmoid_focal_loss",
    "softmax_ce_loss",
    "varifocal_loss",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

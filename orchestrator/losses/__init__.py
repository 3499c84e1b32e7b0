"""Detection and tagging losses and the Hungarian matcher: pure torch functions shared by tasks."""

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
from orchestrator.losses.varifocal import varifocal_loss

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
    "pairwise_giou",
    "pairwise_iou",
    "sigmoid_bce_loss",
    "sigmoid_focal_loss",
    "softmax_ce_loss",
    "varifocal_loss",
]

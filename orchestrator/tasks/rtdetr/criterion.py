"""RT-DETR's set criterion: Hungarian matching, then classification + L1 + GIoU losses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from orchestrator.losses import (
    box_cxcywh_to_xyxy,
    elementwise_iou,
    giou_box_loss,
    hungarian_match,
    l1_box_loss,
    sigmoid_bce_loss,
    sigmoid_focal_loss,
    softmax_ce_loss,
    varifocal_loss,
)
from orchestrator.tasks.rtdetr.config import COMPONENTS, RTDetrLossConfig


@dataclass
class Prediction:
    """One set of per-query outputs: ``logits`` ``(B, Q, C)`` and ``boxes`` ``(B, Q, 4)``
    normalised ``cxcywh`` (a decoder layer, or the encoder's top-k proposals)."""

    logits: torch.Tensor
    boxes: torch.Tensor


class RTDetrCriterion:
    """Computes the unweighted ``cls``/``bbox``/``giou`` losses of a list of predictions.

    Each prediction is matched to the targets independently and its three losses are added
    to the running components, so with auxiliary outputs each component is the sum over
    layers (as RT-DETR/DETR sum ``loss_vfl``, ``loss_vfl_aux_0`` ...). All losses of one
    call share ``num_boxes``, the number of target boxes in the (micro-)batch.
    """

    def __init__(self, loss: RTDetrLossConfig, num_classes: int):
        self.loss = loss
        self.num_classes = num_classes

    def __call__(
        self,
        predictions: Sequence[Prediction],
        labels: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """``{"cls", "bbox", "giou"}`` raw loss tensors (differentiable), summed over
        ``predictions``; ``labels[b]``/``boxes[b]`` are image ``b``'s targets."""
        num_boxes = float(sum(len(lab) for lab in labels))
        zero = predictions[0].logits.new_zeros(())
        totals = dict.fromkeys(COMPONENTS, zero)
        for pred in predictions:
            for name, value in self._single(pred, labels, boxes, num_boxes).items():
                totals[name] = totals[name] + value
        return totals

    def _single(
        self,
        pred: Prediction,
        labels: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
        num_boxes: float,
    ) -> dict[str, torch.Tensor]:
        cfg = self.loss
        matches = hungarian_match(
            pred.logits,
            pred.boxes,
            labels,
            boxes,
            cost_class=cfg.matcher.cls,
            cost_bbox=cfg.matcher.bbox,
            cost_giou=cfg.matcher.giou,
            class_cost="softmax" if cfg.cls == "ce" else "focal",
        )
        batch_idx = torch.cat([torch.full_like(query, b) for b, (query, _) in enumerate(matches)])
        query_idx = torch.cat([query for query, _ in matches])
        matched_labels = torch.cat([labels[b][t] for b, (_, t) in enumerate(matches)])
        matched_targets = torch.cat([boxes[b][t] for b, (_, t) in enumerate(matches)]).to(
            pred.boxes.dtype
        )
        matched_preds = pred.boxes[batch_idx, query_idx]
        return {
            "cls": self._classification(pred, batch_idx, query_idx, matched_labels,
                                        matched_preds, matched_targets, num_boxes),
            "bbox": l1_box_loss(matched_preds, matched_targets, num_boxes),
            "giou": giou_box_loss(matched_preds, matched_targets, num_boxes),
        }  # fmt: skip

    def _classification(
        self,
        pred: Prediction,
        batch_idx: torch.Tensor,
        query_idx: torch.Tensor,
        matched_labels: torch.Tensor,
        matched_preds: torch.Tensor,
        matched_targets: torch.Tensor,
        num_boxes: float,
    ) -> torch.Tensor:
        cfg = self.loss
        logits = pred.logits
        if cfg.cls == "ce":
            classes = torch.full(
                logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
            )
            classes[batch_idx, query_idx] = matched_labels
            return softmax_ce_loss(logits, classes, cfg.ce.bg_weight)
        one_hot = torch.zeros_like(logits)
        one_hot[batch_idx, query_idx, matched_labels] = 1.0
        if cfg.cls == "bce":
            return sigmoid_bce_loss(logits, one_hot, num_boxes)
        if cfg.cls == "focal":
            return sigmoid_focal_loss(
                logits, one_hot, num_boxes, alpha=cfg.focal.alpha, gamma=cfg.focal.gamma
            )
        # varifocal: a matched query's target is the IoU its box reaches, a quality score
        iou = elementwise_iou(
            box_cxcywh_to_xyxy(matched_preds.detach()), box_cxcywh_to_xyxy(matched_targets)
        )
        scores = torch.zeros_like(logits)
        scores[batch_idx, query_idx, matched_labels] = iou.to(logits.dtype)
        return varifocal_loss(
            logits, one_hot, scores, num_boxes, alpha=cfg.focal.alpha, gamma=cfg.focal.gamma
        )

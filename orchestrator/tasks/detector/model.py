"""Faster R-CNN assembled: backbone -> RPN -> proposals -> RoI Align -> box head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from orchestrator.tasks.detector.anchors import grid_anchors
from orchestrator.tasks.detector.backbone import STRIDE, Backbone
from orchestrator.tasks.detector.box_coder import BoxCoder
from orchestrator.tasks.detector.config import COMPONENTS, DetectorLossConfig, DetectorModelConfig
from orchestrator.tasks.detector.losses import (
    box_classification_term,
    l1_term,
    objectness_term,
)
from orchestrator.tasks.detector.roi_align import roi_align
from orchestrator.tasks.detector.roi_head import (
    RCNN_STDS,
    BoxHead,
    ImageDetections,
    postprocess,
    sample_rois,
)
from orchestrator.tasks.detector.rpn import RPNHead, proposals, rpn_targets, sampled_predictions

#: the loss terms, in the order :meth:`FasterRCNN.forward` returns them


@dataclass
class Targets:
    """Ground truth of one image: ``boxes`` ``(G, 4)`` ``xyxy`` in input pixels, class
    ``labels`` ``(G,)``."""

    boxes: torch.Tensor
    labels: torch.Tensor


class FasterRCNN(nn.Module):
    """Two-stage detector for ``num_classes`` classes on square-or-not images whose sides
    are multiples of 16.

    ``model(images, targets)`` (training) returns the four *unweighted* loss terms
    ``{"cls", "bbox", "rpn_cls", "rpn_bbox"}`` reduced as ``loss.reduction`` says;
    ``model(images)`` returns one :class:`ImageDetections` per image. Targets are needed in
    the forward pass because the RoI head only sees the RoIs sampled against them.
    """

    def __init__(self, model: DetectorModelConfig, loss: DetectorLossConfig, num_classes: int):
        super().__init__()
        self.model_config = model
        self.loss_config = loss
        self.num_classes = num_classes
        num_anchors = len(model.anchor.scales) * len(model.anchor.ratios)
        self.backbone = Backbone(model.channels)
        channels = self.backbone.out_channels
        self.rpn = RPNHead(channels, num_anchors)
        self.box_head = BoxHead(
            channels * model.roi_size**2, model.head_dim, num_classes, loss.cls
        )
        self.rpn_coder = BoxCoder()
        self.rcnn_coder = BoxCoder(RCNN_STDS)

    def forward(
        self, images: torch.Tensor, targets: list[Targets] | None = None
    ) -> dict[str, torch.Tensor] | list[ImageDetections]:
        features = self.backbone(images)
        image_size = (images.shape[-2], images.shape[-1])
        anchors = grid_anchors(
            features.shape[-2],
            features.shape[-1],
            STRIDE,
            self.model_config.anchor.scales,
            self.model_config.anchor.ratios,
            device=images.device,
        )
        logits, deltas = self.rpn(features)
        cfg = self.model_config.proposals
        boxes = proposals(
            anchors,
            logits.detach(),
            deltas.detach(),
            image_size=image_size,
            config=cfg,
            max_per_img=cfg.max_per_img_train if targets is not None else cfg.max_per_img_test,
            coder=self.rpn_coder,
        )
        if targets is None:
            return self._detect(features, boxes, image_size)
        return self._losses(features, anchors, logits, deltas, boxes, targets, image_size)

    def _losses(
        self,
        features: torch.Tensor,
        anchors: torch.Tensor,
        logits: torch.Tensor,
        deltas: torch.Tensor,
        boxes: list[torch.Tensor],
        targets: list[Targets],
        image_size: tuple[int, int],
    ) -> dict[str, torch.Tensor]:
        loss = self.loss_config
        rpn = [rpn_targets(anchors, t.boxes, loss.rpn, self.rpn_coder) for t in targets]
        rpn_logits, rpn_deltas = sampled_predictions(logits, deltas, rpn)
        rois = [
            sample_rois(
                proposal,
                t.boxes,
                t.labels,
                num_classes=self.num_classes,
                stage=loss.rcnn,
                coder=self.rcnn_coder,
            )
            for proposal, t in zip(boxes, targets, strict=True)
        ]
        cls_logits, box_deltas = self.box_head(
            self._roi_features(features, [r.boxes for r in rois], image_size)
        )
        # regression only for positives, each with its own class's deltas
        sizes = [r.boxes.shape[0] for r in rois]
        per_image_logits = list(cls_logits.split(sizes))
        per_image_deltas = [
            d[torch.arange(r.num_pos, device=d.device), r.labels[: r.num_pos]]
            for d, r in zip(box_deltas.split(sizes), rois, strict=True)
        ]
        terms = {
            "cls": box_classification_term(
                per_image_logits,
                [r.labels for r in rois],
                kind=loss.cls,
                num_classes=self.num_classes,
                bg_weight=loss.ce.bg_weight,
                gamma=loss.focal.gamma,
                alpha=loss.focal.alpha,
            ),
            "bbox": l1_term(per_image_deltas, [r.targets for r in rois], sizes),
            "rpn_cls": objectness_term(rpn_logits, [t.labels for t in rpn]),
            "rpn_bbox": l1_term(
                rpn_deltas, [t.targets for t in rpn], [t.index.numel() for t in rpn]
            ),
        }
        return {name: terms[name].reduce(loss.reduction) for name in COMPONENTS}

    def _detect(
        self, features: torch.Tensor, boxes: list[torch.Tensor], image_size: tuple[int, int]
    ) -> list[ImageDetections]:
        cls_logits, box_deltas = self.box_head(self._roi_features(features, boxes, image_size))
        sizes = [b.shape[0] for b in boxes]
        return [
            postprocess(
                logits,
                deltas,
                rois,
                cls_kind=self.loss_config.cls,
                image_size=image_size,
                config=self.model_config.test,
                coder=self.rcnn_coder,
            )
            for logits, deltas, rois in zip(
                cls_logits.split(sizes), box_deltas.split(sizes), boxes, strict=True
            )
        ]

    def _roi_features(
        self, features: torch.Tensor, boxes: list[torch.Tensor], image_size: tuple[int, int]
    ) -> torch.Tensor:
        return roi_align(
            features,
            boxes,
            output_size=self.model_config.roi_size,
            image_size=image_size,
            sampling_ratio=self.model_config.sampling_ratio,
        )

"""The second stage: RoI sampling, the box head (two FC layers, a classifier and class-wise
box deltas), and post-processing into detections."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.config.classification import ClassificationLoss
from orchestrator.tasks.detector.box_coder import BoxCoder, clip_boxes
from orchestrator.tasks.detector.config import InferenceConfig, RcnnStageConfig
from orchestrator.tasks.detector.nms import batched_nms
from orchestrator.tasks.detector.sampler import assign_and_sample

#: MMDetection's ``target_stds`` of the RoI head: refinements are small, scale them to O(1)
RCNN_STDS = (0.1, 0.1, 0.2, 0.2)
#: sigmoid (focal) heads start predicting this probability for every class (RetinaNet's
#: prior), so the many background RoIs do not swamp the first steps with a large loss
FOCAL_PRIOR = 0.01


class BoxHead(nn.Module):
    """``flatten -> FC -> FC ->`` class logits and ``4 x num_classes`` box deltas."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_classes: int,
        classification: ClassificationLoss,
    ):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        # ce has an explicit background logit; focal's background is "no class fires"
        self.cls = nn.Linear(hidden, classification.num_logits(num_classes))
        self.reg = nn.Linear(hidden, 4 * num_classes)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.reg.bias)
        sigmoid = not classification.background_logit
        prior = -math.log((1 - FOCAL_PRIOR) / FOCAL_PRIOR) if sigmoid else 0.0
        nn.init.constant_(self.cls.bias, prior)

    def forward(self, roi_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R, K or K + 1)`` logits and ``(R, K, 4)`` deltas of ``(R, C, S, S)`` features."""
        x = F.relu(self.fc1(roi_features.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.cls(x), self.reg(x).reshape(x.shape[0], -1, 4)


@dataclass
class RoiSample:
    """One image's sampled RoIs (positives first): ``boxes``, class ``labels``
    (``num_classes`` = background) and the ``num_pos`` positives' regression ``targets``."""

    boxes: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    num_pos: int


def sample_rois(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    *,
    num_classes: int,
    stage: RcnnStageConfig,
    coder: BoxCoder,
) -> RoiSample:
    """Assign and sample one image's proposals, the ground-truth boxes added to them so
    the head has positives even while the RPN's proposals are still poor."""
    candidates = torch.cat((proposals, gt_boxes.to(proposals.dtype)))
    assignment, positive, negative = assign_and_sample(candidates, gt_boxes, stage)
    index = torch.cat((positive, negative))
    labels = torch.full((index.numel(),), num_classes, dtype=torch.int64, device=index.device)
    matched = assignment.gt_index[positive]
    labels[: positive.numel()] = gt_labels[matched]
    targets = coder.encode(candidates[positive], gt_boxes[matched].to(proposals.dtype))
    return RoiSample(candidates[index], labels, targets, positive.numel())


@dataclass
class ImageDetections:
    """Final detections of one image: ``xyxy`` pixel ``boxes``, ``scores``, class ``labels``."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


def postprocess(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    rois: torch.Tensor,
    *,
    classification: ClassificationLoss,
    image_size: tuple[int, int],
    config: InferenceConfig,
    coder: BoxCoder,
) -> ImageDetections:
    """One image's detections: each RoI x class scored, its box decoded with that class's
    deltas, kept above ``score_thr``, class-wise NMS, the ``max_per_img`` best."""
    num_classes = deltas.shape[1]
    probs = classification.probabilities(logits)
    boxes = coder.decode(
        rois[:, None, :].expand(-1, num_classes, -1).reshape(-1, 4), deltas.reshape(-1, 4)
    )
    boxes = clip_boxes(boxes, *image_size)
    scores = probs.reshape(-1)
    labels = torch.arange(num_classes, device=logits.device).repeat(rois.shape[0])
    keep = scores > config.score_thr
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, config.nms_iou)[: config.max_per_img]
    return ImageDetections(boxes[keep], scores[keep], labels[keep])

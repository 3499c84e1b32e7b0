"""Random positive/negative sampling of assigned candidates (MMDetection's ``RandomSampler``)."""

from __future__ import annotations

import torch

from orchestrator.tasks.detector.assigner import NEGATIVE, POSITIVE, Assignment, assign
from orchestrator.tasks.detector.config import RcnnStageConfig, RpnStageConfig


def sample(
    labels: torch.Tensor, num: int, pos_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positive, negative)`` indices into ``labels``, drawn uniformly without replacement.

    At most ``int(num * pos_fraction)`` positives; negatives fill the remaining
    ``num - positives`` slots, so a batch with few positives is topped up with background
    (the number of samples stays ``num`` while enough candidates exist). Uses torch's global
    generator, which the training loop seeds.
    """
    positive = torch.nonzero(labels == POSITIVE).flatten()
    negative = torch.nonzero(labels == NEGATIVE).flatten()
    num_pos = min(positive.numel(), int(num * pos_fraction))
    num_neg = min(negative.numel(), num - num_pos)
    positive = positive[torch.randperm(positive.numel(), device=labels.device)[:num_pos]]
    negative = negative[torch.randperm(negative.numel(), device=labels.device)[:num_neg]]
    return positive, negative


def assign_and_sample(
    candidates: torch.Tensor, gt_boxes: torch.Tensor, stage: RpnStageConfig | RcnnStageConfig
) -> tuple[Assignment, torch.Tensor, torch.Tensor]:
    """One stage's assigner then its sampler on one image's candidates (anchors for the
    RPN, proposals for the RoI head): ``(assignment, positive, negative)``."""
    a = stage.assigner
    assignment = assign(
        candidates,
        gt_boxes,
        pos_iou_thr=a.pos_iou_thr,
        neg_iou_thr=a.neg_iou_thr,
        min_pos_iou=a.min_pos_iou,
        match_low_quality=a.match_low_quality,
    )
    positive, negative = sample(assignment.labels, stage.sampler.num, stage.sampler.pos_fraction)
    return assignment, positive, negative

"""Greedy non-maximum suppression in plain torch (torchvision's ``nms`` is not usable here,
see docs/detector.md); IoU comes from :func:`orchestrator.losses.pairwise_iou`."""

from __future__ import annotations

import numpy as np
import torch

from orchestrator.losses import pairwise_iou


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the kept ``xyxy`` boxes, by decreasing score: a box is dropped when its
    IoU with a higher-scoring kept box is ``> iou_threshold`` (torchvision's rule)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = scores.argsort(descending=True)
    iou, _ = pairwise_iou(boxes[order], boxes[order])
    # the overlap test once as a matrix; the inherently sequential sweep then runs over
    # numpy booleans, ~100x cheaper per step than indexing torch tensors in a Python loop
    overlaps = (iou > iou_threshold).cpu().numpy()
    removed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=boxes.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """:func:`nms` within each group (class) independently, in one pass: every group's boxes
    are shifted by a multiple of an offset larger than any box, so groups never overlap."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    offset = boxes.max() - boxes.min() + 1
    shifted = boxes + (groups.to(boxes.dtype) * offset)[:, None]
    return nms(shifted, scores, iou_threshold)

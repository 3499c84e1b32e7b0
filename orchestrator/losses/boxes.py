"""Box conversions, IoU/GIoU and the two box regression losses used by DETR-style criteria.

Boxes are ``(..., 4)`` float tensors: ``cxcywh`` = centre x, centre y, width, height and
``xyxy`` = left, top, right, bottom, in the same (usually normalised) units.
"""

from __future__ import annotations

import torch


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` -> ``(x0, y0, x1, y1)``."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(x0, y0, x1, y1)`` -> ``(cx, cy, w, h)``."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``xyxy`` boxes (negative extents count as zero)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def pairwise_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union area of every pair of ``xyxy`` boxes: ``(N, 4), (M, 4) -> (N, M), (N, M)``."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    # degenerate (zero-area) pairs would otherwise give 0/0 = nan
    return inter / union.clamp(min=1e-12), union


def pairwise_giou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of every pair of ``xyxy`` boxes: ``(N, 4), (M, 4) -> (N, M)``.

    ``GIoU = IoU - (C - U) / C`` with ``C`` the area of the smallest enclosing box and ``U``
    the union; it lies in ``[-1, 1]`` and still has a gradient for disjoint boxes.
    """
    iou, union = pairwise_iou(boxes1, boxes2)
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing = (wh[..., 0] * wh[..., 1]).clamp(min=1e-12)
    return iou - (enclosing - union) / enclosing


def elementwise_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of matched pairs of ``xyxy`` boxes: ``(N, 4), (N, 4) -> (N,)``."""
    top_left = torch.max(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    return inter / union.clamp(min=1e-12)


def elementwise_giou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matched pairs of ``xyxy`` boxes: ``(N, 4), (N, 4) -> (N,)``."""
    top_left = torch.max(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    iou = inter / union.clamp(min=1e-12)
    outer = (
        torch.max(boxes1[:, 2:], boxes2[:, 2:]) - torch.min(boxes1[:, :2], boxes2[:, :2])
    ).clamp(min=0)
    enclosing = (outer[:, 0] * outer[:, 1]).clamp(min=1e-12)
    return iou - (enclosing - union) / enclosing


def l1_box_loss(pred: torch.Tensor, target: torch.Tensor, num_boxes: float) -> torch.Tensor:
    """L1 distance between matched ``cxcywh`` boxes, summed over boxes and coordinates,
    divided by ``num_boxes`` (the number of target boxes in the batch, as DETR)."""
    return (pred - target).abs().sum() / max(num_boxes, 1.0)


def giou_box_loss(pred: torch.Tensor, target: torch.Tensor, num_boxes: float) -> torch.Tensor:
    """``sum(1 - GIoU)`` over matched ``cxcywh`` box pairs, divided by ``num_boxes``."""
    giou = elementwise_giou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(target))
    return (1.0 - giou).sum() / max(num_boxes, 1.0)

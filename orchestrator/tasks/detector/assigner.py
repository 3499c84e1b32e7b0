"""Max-IoU assignment of candidate boxes (anchors or proposals) to ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from orchestrator.losses import pairwise_iou

#: labels of :class:`Assignment`
POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass
class Assignment:
    """Per candidate: ``labels`` (``POSITIVE``/``NEGATIVE``/``IGNORED``) and ``gt_index``,
    the ground truth a positive is assigned to (meaningless for the others)."""

    labels: torch.Tensor
    gt_index: torch.Tensor


def assign(
    candidates: torch.Tensor,
    gt_boxes: torch.Tensor,
    *,
    pos_iou_thr: float,
    neg_iou_thr: float,
    min_pos_iou: float,
    match_low_quality: bool,
) -> Assignment:
    """MMDetection's ``MaxIoUAssigner`` rules, for ``(N, 4)`` candidates and ``(G, 4)``
    ground truth (both ``xyxy``).

    Each candidate takes its best-overlapping ground truth: positive if that IoU is
    ``>= pos_iou_thr``, negative if ``< neg_iou_thr``, ignored in between. With
    ``match_low_quality`` every ground truth then also makes positive the candidates that
    reach its own highest IoU (ties included), if that IoU is ``>= min_pos_iou``: without it
    an object no anchor overlaps by 0.7 would never be learned by the RPN.
    """
    n = candidates.shape[0]
    device = candidates.device
    if gt_boxes.numel() == 0:
        # an image without objects: everything is background
        return Assignment(
            torch.full((n,), NEGATIVE, dtype=torch.int64, device=device),
            torch.zeros(n, dtype=torch.int64, device=device),
        )
    iou, _ = pairwise_iou(gt_boxes, candidates)  # (G, N)
    best_iou, gt_index = iou.max(dim=0)
    labels = torch.full((n,), IGNORED, dtype=torch.int64, device=device)
    labels[best_iou < neg_iou_thr] = NEGATIVE
    labels[best_iou >= pos_iou_thr] = POSITIVE
    if match_low_quality:
        gt_best = iou.max(dim=1).values  # (G,)
        for g in range(gt_boxes.shape[0]):
            if gt_best[g] < min_pos_iou:
                continue
            hits = iou[g] == gt_best[g]
            labels[hits] = POSITIVE
            gt_index[hits] = g
    return Assignment(labels, gt_index)

"""Hungarian (optimal one-to-one) matching of predicted queries to target boxes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from scipy.optimize import linear_sum_assignment

from orchestrator.losses.boxes import box_cxcywh_to_xyxy, pairwise_giou

ClassCost = Literal["focal", "softmax"]


def classification_cost(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    kind: ClassCost,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Cost of assigning each query to each target's class: ``(Q, C), (T,) -> (Q, T)``.

    ``"focal"`` (sigmoid heads) is the focal loss of calling the query positive for that
    class minus the focal loss of calling it negative, as Deformable DETR/RT-DETR match;
    ``"softmax"`` (a ``C = K + 1`` head with a background column) is ``-softmax prob``.
    """
    if kind == "softmax":
        return -logits.softmax(-1)[:, labels]
    prob = logits.sigmoid()[:, labels]
    eps = 1e-8
    pos = alpha * (1 - prob) ** gamma * -(prob + eps).log()
    neg = (1 - alpha) * prob**gamma * -(1 - prob + eps).log()
    return pos - neg


@torch.no_grad()
def hungarian_match(
    logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    target_labels: Sequence[torch.Tensor],
    target_boxes: Sequence[torch.Tensor],
    *,
    cost_class: float = 2.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
    class_cost: ClassCost = "focal",
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Match queries to targets image by image.

    ``logits``: ``(B, Q, C)``; ``pred_boxes``: ``(B, Q, 4)`` normalised ``cxcywh``; for each
    image ``target_labels[b]``: ``(T_b,)`` long and ``target_boxes[b]``: ``(T_b, 4)``
    ``cxcywh``. The cost is ``cost_class * class + cost_bbox * L1 + cost_giou * (-GIoU)``.
    ``alpha``/``gamma`` parametrise the focal class cost (RT-DETR's matcher uses 0.25 / 2,
    independent of the loss's own alpha).

    Returns, per image, ``(query_indices, target_indices)`` int64 tensors of length
    ``min(Q, T_b)`` on the device of ``logits``, sorted by query index.
    """
    results: list[tuple[torch.Tensor, torch.Tensor]] = []
    for b in range(logits.shape[0]):
        labels, boxes = target_labels[b], target_boxes[b]
        if labels.numel() == 0:
            empty = torch.empty(0, dtype=torch.int64, device=logits.device)
            results.append((empty, empty.clone()))
            continue
        out_logits = logits[b].float()
        out_boxes = pred_boxes[b].float()
        boxes = boxes.to(out_boxes)
        cost = (
            cost_class
            * classification_cost(out_logits, labels, kind=class_cost, alpha=alpha, gamma=gamma)
            + cost_bbox * torch.cdist(out_boxes, boxes, p=1)
            - cost_giou * pairwise_giou(box_cxcywh_to_xyxy(out_boxes), box_cxcywh_to_xyxy(boxes))
        )
        # nan/inf from a diverged model would make scipy raise; fall back to a huge cost
        cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8)
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        results.append(
            (
                torch.as_tensor(rows, dtype=torch.int64, device=logits.device),
                torch.as_tensor(cols, dtype=torch.int64, device=logits.device),
            )
        )
    return results

"""Region proposal network: objectness and box deltas per anchor, its training targets,
and the proposals handed to the RoI head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.tasks.detector.assigner import POSITIVE
from orchestrator.tasks.detector.box_coder import BoxCoder, clip_boxes
from orchestrator.tasks.detector.config import ProposalConfig, RpnStageConfig
from orchestrator.tasks.detector.nms import nms
from orchestrator.tasks.detector.sampler import assign_and_sample


class RPNHead(nn.Module):
    """A shared 3x3 conv, then per anchor one objectness logit and four deltas."""

    def __init__(self, channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * num_anchors, 1)
        # MMDetection's init: small outputs, so early proposals are the anchors themselves
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            if layer.bias is not None:  # typed optional; these convolutions all have one
                nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, H*W*A)`` logits and ``(B, H*W*A, 4)`` deltas, in :func:`grid_anchors` order."""
        x = F.relu(self.conv(features))
        batch, _, height, width = x.shape
        logits = self.objectness(x).permute(0, 2, 3, 1).reshape(batch, -1)
        deltas = self.deltas(x).reshape(batch, -1, 4, height, width)
        deltas = deltas.permute(0, 3, 4, 1, 2).reshape(batch, -1, 4)
        return logits, deltas


@dataclass
class RpnTargets:
    """One image's sampled anchors: ``index`` (positives first), their 0/1 ``labels``, and
    the regression ``targets`` of the ``num_pos`` positives."""

    index: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    num_pos: int


def rpn_targets(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    stage: RpnStageConfig,
    coder: BoxCoder,
) -> RpnTargets:
    """Assign every anchor of an image, then sample ``stage.sampler`` of them."""
    assignment, positive, negative = assign_and_sample(anchors, gt_boxes, stage)
    index = torch.cat((positive, negative))
    labels = (assignment.labels[index] == POSITIVE).to(torch.int64)
    targets = coder.encode(anchors[positive], gt_boxes[assignment.gt_index[positive]])
    return RpnTargets(index, labels, targets, positive.numel())


@torch.no_grad()
def proposals(
    anchors: torch.Tensor,
    logits: torch.Tensor,
    deltas: torch.Tensor,
    *,
    image_size: tuple[int, int],
    config: ProposalConfig,
    max_per_img: int,
    coder: BoxCoder,
) -> list[torch.Tensor]:
    """Per image, up to ``max_per_img`` ``xyxy`` proposals (detached): the ``nms_pre``
    highest-scoring anchors, decoded, clipped, without boxes under ``min_size``, after NMS.
    Detached as in the standard (approximate joint) training: the RoI head's loss does not
    flow back into the RPN through the proposal coordinates."""
    height, width = image_size
    out = []
    for b in range(logits.shape[0]):
        scores = logits[b]
        top = scores.topk(min(config.nms_pre, scores.numel())).indices
        boxes = clip_boxes(coder.decode(anchors[top], deltas[b, top]), height, width)
        scores = scores[top]
        wh = boxes[:, 2:] - boxes[:, :2]
        big = (wh >= config.min_size).all(dim=1)
        boxes, scores = boxes[big], scores[big]
        keep = nms(boxes, scores, config.nms_iou)[:max_per_img]
        out.append(boxes[keep])
    return out


def sampled_predictions(
    logits: torch.Tensor, deltas: torch.Tensor, targets: Sequence[RpnTargets]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each image's objectness logits of its sampled anchors and deltas of its positives."""
    sampled_logits = [logits[b, t.index] for b, t in enumerate(targets)]
    positive_deltas = [deltas[b, t.index[: t.num_pos]] for b, t in enumerate(targets)]
    return sampled_logits, positive_deltas

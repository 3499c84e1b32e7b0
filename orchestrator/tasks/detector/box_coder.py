"""Box <-> regression-target coding (MMDetection's ``DeltaXYWHBBoxCoder``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: the largest log-scale a decoded box may grow by: exp(4.135) = 62.5 x, as MMDetection, so
#: an untrained head cannot produce inf-sized boxes
MAX_LOG_RATIO = abs(math.log(16.0 / 1000))


class BoxCoder:
    """Encodes ``xyxy`` boxes relative to reference boxes as ``(dx, dy, dw, dh)``.

    ``dx = (gx - px) / pw`` and ``dw = log(gw / pw)`` (same for y/h), each divided by its
    ``std``: the RPN uses 1 (targets are already O(1) for anchors), the RoI head
    ``(0.1, 0.1, 0.2, 0.2)``, which scales its small refinements up to unit size.
    """

    def __init__(self, stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
        self.stds = tuple(float(s) for s in stds)

    def encode(self, reference: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``(N, 4)`` deltas taking ``reference`` to ``boxes`` (both ``(N, 4)`` ``xyxy``)."""
        pw, ph, px, py = _whc(reference)
        gw, gh, gx, gy = _whc(boxes)
        deltas = torch.stack(
            ((gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)), dim=-1
        )
        return deltas / deltas.new_tensor(self.stds)

    def decode(self, reference: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """``xyxy`` boxes from ``reference`` ``(N, 4)`` and ``deltas`` ``(N, 4)``."""
        d = deltas * deltas.new_tensor(self.stds)
        pw, ph, px, py = _whc(reference)
        dw = d[:, 2].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
        dh = d[:, 3].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
        cx, cy = px + d[:, 0] * pw, py + d[:, 1] * ph
        w, h = pw * dw.exp(), ph * dh.exp()
        return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``xyxy`` boxes clipped to the image ``[0, width] x [0, height]``."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=-1)


def _whc(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return w, h, boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h

"""Anchor boxes on a feature-map grid (MMDetection's ``AnchorGenerator``, one level)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def base_anchors(stride: int, scales: Sequence[float], ratios: Sequence[float]) -> torch.Tensor:
    """``(A, 4)`` ``xyxy`` anchors centred on 0, ratio-major: for each ratio ``h / w``, each
    scale; side ``scale x stride`` with area ``side**2`` whatever the ratio."""
    out = []
    for ratio in ratios:
        h_ratio = ratio**0.5
        for scale in scales:
            side = scale * stride
            w, h = side / h_ratio, side * h_ratio
            out.append((-w / 2, -h / 2, w / 2, h / 2))
    return torch.tensor(out, dtype=torch.float32)


def grid_anchors(
    height: int,
    width: int,
    stride: int,
    scales: Sequence[float],
    ratios: Sequence[float],
    *,
    device: torch.device | None = None,
) -> torch.Tensor:
    """``(height * width * A, 4)`` ``xyxy`` anchors in image pixels, ordered (row, column,
    anchor) to match a head output permuted to ``(B, H, W, A)``.

    Anchors are centred on the cell centre ``(x + 0.5) * stride`` rather than its corner
    (MMDetection's ``center_offset=0``): the aligned RoI sampling treats feature cell ``x``
    as the image patch ``[x * stride, (x + 1) * stride)``, so both agree on where a cell is.
    """
    base = base_anchors(stride, scales, ratios).to(device)
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)
    return (centres + base.reshape(1, -1, 4)).reshape(-1, 4)

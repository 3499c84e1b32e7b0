"""RoI Align by bilinear sampling with :func:`torch.nn.functional.grid_sample`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def roi_align(
    features: torch.Tensor,
    rois: list[torch.Tensor],
    *,
    output_size: int,
    image_size: tuple[int, int],
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """``(R, C, output_size, output_size)`` features of the ``xyxy`` boxes ``rois[b]`` (image
    pixels) of each image ``b`` of ``features`` ``(B, C, H, W)``, in order.

    Every box is split into ``output_size**2`` bins; each bin is the mean of
    ``sampling_ratio**2`` bilinearly interpolated points spread evenly inside it, as
    torchvision's ``roi_align(aligned=True)``. With ``align_corners=False`` grid_sample's
    coordinate -1..1 spans the feature map's outer edges, which are the image's edges, so an
    image coordinate ``x`` maps to ``2 x / width - 1`` whatever the stride. Points past the
    image edge repeat the border value (``padding_mode="border"``) rather than fading to 0.
    """
    height, width = image_size
    per_side = output_size * sampling_ratio
    # point k of a box side at fraction (k + 0.5) / per_side: sampling_ratio points per bin
    steps = (torch.arange(per_side, device=features.device, dtype=features.dtype) + 0.5) / per_side
    outputs = []
    for b, boxes in enumerate(rois):
        if boxes.numel() == 0:
            continue
        boxes = boxes.to(features.dtype)
        x = boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])  # (R, P)
        y = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])
        gx = (2 * x / width - 1)[:, None, :].expand(-1, per_side, -1)  # (R, P, P)
        gy = (2 * y / height - 1)[:, :, None].expand(-1, -1, per_side)
        grid = torch.stack((gx, gy), dim=-1).reshape(1, -1, per_side, 2)  # (1, R*P, P, 2)
        sampled = F.grid_sample(
            features[b : b + 1], grid, mode="bilinear", padding_mode="border", align_corners=False
        )  # (1, C, R*P, P)
        # bin means by a reshape: (C, R, S, s, S, s) -> mean over the s x s points of a bin
        # (cheaper than avg_pool2d on the transposed, non-contiguous tensor)
        channels, bins = sampled.shape[1], output_size
        sampled = sampled.reshape(channels, -1, bins, sampling_ratio, bins, sampling_ratio)
        outputs.append(sampled.mean(dim=(3, 5)).transpose(0, 1))
    if not outputs:
        return features.new_zeros((0, features.shape[1], output_size, output_size))
    return torch.cat(outputs)

"""A tiny ResNet-like backbone with a one-level FPN-style merge: stride-8 features that
see stride-16 context. Randomly initialised (seed torch first); nothing is downloaded."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: stride of the returned feature map, in input pixels
STRIDE = 8


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: micro-batches of 1-8 images (a searched knob) would make
    # BatchNorm statistics noisy and make a result depend on how the effective batch is
    # split into micro-batches; GroupNorm is per image, so the split changes nothing
    return nn.GroupNorm(math.gcd(8, channels), channels)


class BasicBlock(nn.Module):
    """ResNet's two-convolution residual block, downsampling by ``stride``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = _norm(out_channels)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), _norm(out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Backbone(nn.Module):
    """Stem (stride 2) and three blocks (strides 4, 8, 16); the stride-16 output is
    upsampled and added to the stride-8 one (FPN's top-down path, one level), so anchors on
    a fine grid still see the context of objects up to the image size."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, max(c // 4, 1), 3, 2, 1, bias=False), _norm(max(c // 4, 1)), nn.ReLU()
        )
        self.layer1 = BasicBlock(max(c // 4, 1), max(c // 2, 1), 2)
        self.layer2 = BasicBlock(max(c // 2, 1), c, 2)
        self.layer3 = BasicBlock(c, 2 * c, 2)
        self.lateral = nn.Conv2d(c, c, 1)
        self.top_down = nn.Conv2d(2 * c, c, 1)
        self.smooth = nn.Conv2d(c, c, 3, 1, 1)
        self.out_channels = c

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H / 8, W / 8)`` features of ``(B, 3, H, W)`` images in ``[0, 1]``."""
        x = self.stem((images - 0.5) / 0.25)  # roughly zero-mean, unit-variance input
        c8 = self.layer2(self.layer1(x))
        c16 = self.layer3(c8)
        merged = self.lateral(c8) + F.interpolate(
            self.top_down(c16), size=c8.shape[-2:], mode="nearest"
        )
        return F.relu(self.smooth(merged))

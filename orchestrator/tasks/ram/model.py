"""The ``ram`` task's networks: a small conv tagger (the student) and its frozen teacher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from orchestrator.tasks.ram.config import TagNetConfig, TeacherConfig


@dataclass
class TagOutput:
    """``logits`` ``(B, T)`` over the tags, ``coarse_logits`` ``(B, G)`` over the coarse
    tags (``G = 0`` without groups), ``embedding`` ``(B, D_teacher)``: the image embedding
    projected to the teacher's width, the distillation target's space (as RAM projects its
    image embedding to CLIP's)."""

    logits: torch.Tensor
    coarse_logits: torch.Tensor
    embedding: torch.Tensor


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TagNet(nn.Module):
    """Four conv stages (stride 1, 2, 2, 2), global average pooling, a linear image
    embedding, and linear heads for tags, coarse tags and the distillation projection."""

    def __init__(
        self, config: TagNetConfig, num_tags: int, num_coarse: int, teacher_dim: int
    ) -> None:
        super().__init__()
        w = config.width
        self.backbone = nn.Sequential(
            _stage(3, w, 1),
            _stage(w, 2 * w, 2),
            _stage(2 * w, 4 * w, 2),
            _stage(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(8 * w, config.embed_dim), nn.ReLU(inplace=True))
        self.tag_head = nn.Linear(config.embed_dim, num_tags)
        # no coarse head without groups: a parameter that never gets a gradient would stall
        # DDP's gradient all-reduce
        self.coarse_head = nn.Linear(config.embed_dim, num_coarse) if num_coarse else None
        self.distill_head = nn.Linear(config.embed_dim, teacher_dim)

    def forward(self, pixel_values: torch.Tensor) -> TagOutput:
        embedding = self.embed(self.backbone(pixel_values))
        logits = self.tag_head(embedding)
        coarse = (
            self.coarse_head(embedding)
            if self.coarse_head is not None
            else logits.new_zeros(logits.shape[0], 0)
        )
        return TagOutput(logits, coarse, self.distill_head(embedding))


class RandomTeacher(nn.Module):
    """A fixed random conv feature extractor: two stride-2 convs, pooling, a projection."""

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        w = config.width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * w, config.dim),
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(pixel_values)
        return out


class Teacher:
    """The frozen teacher: embeddings under ``no_grad``, standardised if configured.

    Not an ``nn.Module`` on purpose: it must not be a submodule of the trained model (the
    optimizer, DDP and the saved weights would all include it).
    """

    def __init__(self, config: TeacherConfig, image_size: int) -> None:
        self.normalize = config.normalize
        self.net: nn.Module
        if config.checkpoint is not None:
            self.net = torch.export.load(Path(config.checkpoint)).module()
        else:
            # its own RNG stream: the teacher is the same whatever the trial's seed
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                self.net = RandomTeacher(config)
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        probe = self(torch.zeros(1, 3, image_size, image_size))
        if probe.ndim != 2 or probe.shape[0] != 1:
            raise ValueError(
                "task.teacher.checkpoint must map (B, 3, S, S) images to (B, D) embeddings, "
                f"got output shape {tuple(probe.shape)}"
            )
        #: the embedding width D
        self.dim = int(probe.shape[1])

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        device = pixel_values.device
        if next(self.net.parameters(), pixel_values).device != device:
            self.net.to(device)
        with torch.no_grad():
            features = self.net(pixel_values).float()
        if self.normalize:
            features = nn.functional.layer_norm(features, features.shape[-1:])
        return features

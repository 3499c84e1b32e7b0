"""A torch Dataset over a folder of tagged images (format: :mod:`.tags_file`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from orchestrator.tasks.ram.tags_file import read_tags

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TagFolder(Dataset[Item]):
    """Images resized to ``image_size`` x ``image_size`` with multi-hot tag targets.

    Item ``i`` is ``(pixels, tags, coarse)``: ``pixels`` a float ``(3, S, S)`` tensor in
    ``[0, 1]``; ``tags`` a float 0/1 vector over ``vocabulary`` (tags outside it are
    ignored); ``coarse`` the same over ``coarse_vocabulary``, a coarse tag being on when any
    of its tags is (empty when there are no groups).
    """

    def __init__(
        self,
        images_dir: str | Path,
        tags_file: str | Path,
        image_size: int,
        vocabulary: list[str],
        groups: dict[str, str] | None = None,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.image_size = image_size
        self.vocabulary = list(vocabulary)
        self.coarse_vocabulary = sorted(set(groups.values())) if groups else []
        listing = read_tags(tags_file)
        self.files = list(listing)
        index = {tag: i for i, tag in enumerate(self.vocabulary)}
        coarse_index = {tag: i for i, tag in enumerate(self.coarse_vocabulary)}
        self.targets = torch.zeros(len(self.files), len(self.vocabulary))
        self.coarse_targets = torch.zeros(len(self.files), len(self.coarse_vocabulary))
        for row, name in enumerate(self.files):
            for tag in listing[name]:
                if tag in index:
                    self.targets[row, index[tag]] = 1.0
                if groups and tag in groups:
                    self.coarse_targets[row, coarse_index[groups[tag]]] = 1.0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Item:
        with Image.open(self.images_dir / self.files[i]) as file:
            image = file.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        pixels = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        return pixels, self.targets[i], self.coarse_targets[i]


def collate_tags(samples: list[Item]) -> dict[str, Any]:
    """``{"pixel_values": (B, 3, S, S), "tags": (B, T), "coarse": (B, G)}``."""
    pixels, tags, coarse = zip(*samples, strict=True)
    return {
        "pixel_values": torch.stack(pixels),
        "tags": torch.stack(tags),
        "coarse": torch.stack(coarse),
    }

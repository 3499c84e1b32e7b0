"""A torch Dataset over any COCO-format folder (image directory + instances json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

Target = dict[str, Any]


class CocoDetection(Dataset[tuple[torch.Tensor, Target]]):
    """Images resized to ``image_size`` x ``image_size`` with normalised ``cxcywh`` boxes.

    Item ``i`` is ``(pixel_values, target)``: ``pixel_values`` a float ``(3, S, S)`` tensor in
    ``[0, 1]``; ``target`` a dict with ``image_id`` (int, the COCO id), ``class_labels``
    (``LongTensor[n]``, contiguous index into :attr:`category_ids`), ``boxes``
    (``FloatTensor[n, 4]``, ``cxcywh`` relative to the image, so unaffected by the resize)
    and ``orig_size`` (``(height, width)`` of the file). Crowd annotations and empty boxes
    are dropped, as DETR does for training targets.
    """

    def __init__(self, images_dir: str | Path, annotation_file: str | Path, image_size: int):
        self.images_dir = Path(images_dir)
        self.annotation_file = Path(annotation_file)
        self.image_size = image_size
        coco = json.loads(self.annotation_file.read_text())
        #: COCO category id of each contiguous class index (sorted by id)
        self.category_ids: list[int] = sorted(int(c["id"]) for c in coco["categories"])
        self.category_names: list[str] = [
            c["name"] for c in sorted(coco["categories"], key=lambda c: int(c["id"]))
        ]
        index_of = {cat: i for i, cat in enumerate(self.category_ids)}
        self._images = sorted(coco["images"], key=lambda im: int(im["id"]))
        self._annotations: dict[int, list[tuple[int, list[float]]]] = {
            int(im["id"]): [] for im in self._images
        }
        for ann in coco.get("annotations", []):
            x, y, w, h = (float(v) for v in ann["bbox"])
            if ann.get("iscrowd", 0) or w <= 0 or h <= 0:
                continue
            self._annotations[int(ann["image_id"])].append(
                (index_of[int(ann["category_id"])], [x, y, w, h])
            )

    @property
    def num_classes(self) -> int:
        """Number of categories in the annotation file."""
        return len(self.category_ids)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        info = self._images[index]
        with Image.open(self.images_dir / info["file_name"]) as file:
            image = file.convert("RGB")
        width, height = image.size
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        pixel_values = torch.from_numpy(array).permute(2, 0, 1).contiguous()

        annotations = self._annotations[int(info["id"])]
        labels = torch.tensor([label for label, _ in annotations], dtype=torch.int64)
        boxes = torch.tensor([box for _, box in annotations], dtype=torch.float32).reshape(-1, 4)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        cxcywh = torch.cat((boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]), dim=1) / scale
        target: Target = {
            "image_id": int(info["id"]),
            "class_labels": labels,
            "boxes": cxcywh.clamp(0.0, 1.0),
            "orig_size": (height, width),
        }
        return pixel_values, target


def collate_detection(samples: list[tuple[torch.Tensor, Target]]) -> dict[str, Any]:
    """``{"pixel_values": (B, 3, S, S), "labels": [target, ...]}`` from dataset items."""
    return {
        "pixel_values": torch.stack([pixels for pixels, _ in samples]),
        "labels": [target for _, target in samples],
    }

"""The ``detector`` task: this package's Faster R-CNN on the same data and mAP as ``rtdetr``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from orchestrator.losses import box_cxcywh_to_xyxy
from orchestrator.tasks.base import LossOutput
from orchestrator.tasks.coco.dataset import collate_detection
from orchestrator.tasks.coco.evaluate import Detections, coco_map, load_coco
from orchestrator.tasks.coco.source import DetectionSource
from orchestrator.tasks.detector.config import (
    VAL_METRICS,
    DetectorLossConfig,
    DetectorTaskConfig,
)
from orchestrator.tasks.detector.model import COMPONENTS, FasterRCNN, Targets


class DetectorTask:
    """Faster R-CNN on a synthetic shapes set or a COCO-format folder (implements ``Task``)."""

    val_metrics: ClassVar[tuple[str, ...]] = VAL_METRICS
    components: ClassVar[tuple[str, ...]] = COMPONENTS
    #: post-processing with data-dependent control flow: torch.export cannot trace it
    mlflow_format: ClassVar[str] = "pickle"

    def __init__(
        self,
        config: DetectorTaskConfig,
        loss: DetectorLossConfig,
        *,
        seed: int,
        data_root: Path,
    ):
        self.config = config
        self.loss_config = loss
        self.seed = seed
        self.source = DetectionSource(config.data, data_root)

    @property
    def num_classes(self) -> int:
        """Number of object classes (the ``ce`` head adds a background logit itself)."""
        return len(self.source.category_ids)

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised, seeded :class:`FasterRCNN`."""
        torch.manual_seed(self.seed)
        return FasterRCNN(self.config.model, self.loss_config, self.num_classes)

    def datasets(self) -> tuple[Dataset[Any], Dataset[Any]]:
        """``(train, val)`` COCO-format datasets (shared with ``rtdetr``)."""
        return self.source.datasets()

    def collate(self, samples: list[Any]) -> Any:
        """``{"pixel_values": (B, 3, S, S), "labels": [target dicts]}``."""
        return collate_detection(samples)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        """Forward in training mode; the model returns the four unweighted terms."""
        model.train()
        pixels = _pixels_for(model, batch)
        raw: dict[str, torch.Tensor] = model(pixels, self._targets(batch, pixels))
        weights = self.loss_config.weight
        # weighted_sum fills ``terms``/``weights`` too, so every ``loss.weighting`` works
        return LossOutput.weighted_sum(
            {name: raw[name] for name in COMPONENTS},
            {name: getattr(weights, name) for name in COMPONENTS},
            self.loss_config.reduction,
        )

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        """COCO mAP and mAP@.5 of the detections on ``loader``'s images."""
        was_training = model.training
        model.eval()
        detections: list[Detections] = []
        image_ids: list[int] = []
        try:
            with torch.no_grad():
                for batch in loader:
                    pixels = _pixels_for(model, batch)
                    size = pixels.shape[-1], pixels.shape[-2]
                    for found, target in zip(model(pixels), batch["labels"], strict=True):
                        height, width = (int(v) for v in target["orig_size"])
                        scale = torch.tensor(
                            [width / size[0], height / size[1]] * 2, dtype=found.boxes.dtype
                        )
                        detections.append(
                            Detections(
                                image_id=int(target["image_id"]),
                                boxes=found.boxes.cpu() * scale,
                                scores=found.scores.cpu(),
                                labels=found.labels.cpu(),
                            )
                        )
                        image_ids.append(int(target["image_id"]))
        finally:
            model.train(was_training)
        metrics = coco_map(
            load_coco(self.source.paths.val_annotations),
            detections,
            image_ids=image_ids,
            category_ids=self.source.category_ids,
        )
        return {"val/map": metrics["map"], "val/map_50": metrics["map_50"]}

    @staticmethod
    def _targets(batch: Any, pixels: torch.Tensor) -> list[Targets]:
        # dataset boxes are normalised cxcywh; the model works in input pixels
        height, width = pixels.shape[-2], pixels.shape[-1]
        scale = pixels.new_tensor([width, height, width, height])
        return [
            Targets(
                boxes=box_cxcywh_to_xyxy(t["boxes"].to(pixels.device)) * scale,
                labels=t["class_labels"].to(pixels.device),
            )
            for t in batch["labels"]
        ]


def _pixels_for(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    # a no-op when the training loop already placed the batch (Accelerate's device)
    pixels: torch.Tensor = batch["pixel_values"]
    return pixels.to(next(model.parameters()).device)

"""The ``rtdetr`` task: Hugging Face RT-DETR trained with this project's own criterion."""

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
from orchestrator.tasks.coco.synthetic import CocoPaths
from orchestrator.tasks.rtdetr.config import VAL_METRICS, RTDetrLossConfig, RTDetrTaskConfig
from orchestrator.tasks.rtdetr.criterion import COMPONENTS, Prediction, RTDetrCriterion
from orchestrator.tasks.rtdetr.model import build_rtdetr


class RTDetrTask:
    """RT-DETR on a synthetic shapes set or a COCO-format folder (implements ``Task``)."""

    val_metrics: ClassVar[tuple[str, ...]] = VAL_METRICS
    components: ClassVar[tuple[str, ...]] = COMPONENTS
    #: post-processing with data-dependent control flow: torch.export cannot trace it
    mlflow_format: ClassVar[str] = "pickle"

    def __init__(
        self,
        config: RTDetrTaskConfig,
        loss: RTDetrLossConfig,
        *,
        seed: int,
        data_root: Path,
    ):
        self.config = config
        self.loss_config = loss
        self.seed = seed
        self.data_root = Path(data_root)
        # paths, categories and datasets are shared with the detector task
        self.source = DetectionSource(config.data, data_root)
        self._criterion: RTDetrCriterion | None = None

    @property
    def image_size(self) -> int:
        """Side of the square images fed to the model."""
        return self.config.data.image_size

    @property
    def paths(self) -> CocoPaths:
        """Where the train/val data lives (synthetic data is generated here if missing)."""
        return self.source.paths

    @property
    def category_ids(self) -> list[int]:
        """COCO category id of each class index (see :class:`DetectionSource`)."""
        return self.source.category_ids

    @property
    def num_classes(self) -> int:
        """Number of object classes (excluding the ``ce`` head's background class)."""
        return len(self.category_ids)

    @property
    def num_labels(self) -> int:
        """Classification logits of the model: one more (background) for a softmax loss."""
        return self.loss_config.classification().num_logits(self.num_classes)

    @property
    def criterion(self) -> RTDetrCriterion:
        """The set criterion for this task's loss config."""
        if self._criterion is None:
            self._criterion = RTDetrCriterion(self.loss_config, self.num_classes)
        return self._criterion

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised preset (seeded) or the configured local checkpoint."""
        torch.manual_seed(self.seed)
        return build_rtdetr(self.config.model, self.num_labels, self.image_size)

    def datasets(self) -> tuple[Dataset[Any], Dataset[Any]]:
        """``(train, val)`` :class:`CocoDetection` datasets."""
        return self.source.datasets()

    def collate(self, samples: list[Any]) -> Any:
        """``{"pixel_values": (B, 3, S, S), "labels": [target dicts]}``."""
        return collate_detection(samples)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        """Forward in training mode and apply the criterion (plus auxiliary outputs)."""
        model.train()
        raw = self._raw_losses(model, batch)
        weights = self.loss_config.weight
        return LossOutput.weighted_sum(raw, {name: getattr(weights, name) for name in raw})

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        """COCO mAP / mAP@.5 on ``loader``'s images and the mean unweighted loss sum."""
        was_training = model.training
        model.eval()
        detections: list[Detections] = []
        image_ids: list[int] = []
        loss_sum, batches = 0.0, 0
        try:
            with torch.no_grad():
                for batch in loader:
                    outputs = model(pixel_values=_pixels_for(model, batch))
                    raw = self.criterion(
                        self._predictions(outputs), *self._targets(batch, outputs)
                    )
                    loss_sum += float(sum(value.item() for value in raw.values()))
                    batches += 1
                    detections.extend(self._postprocess(outputs, batch["labels"]))
                    image_ids.extend(int(t["image_id"]) for t in batch["labels"])
        finally:
            model.train(was_training)
        metrics = coco_map(
            load_coco(self.paths.val_annotations),
            detections,
            image_ids=image_ids,
            category_ids=self.category_ids,
        )
        return {
            "val/map": metrics["map"],
            "val/map_50": metrics["map_50"],
            "val/loss_raw": loss_sum / max(batches, 1),
        }

    def _raw_losses(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        # pixel_values only: with labels the HF model would also compute its own loss
        outputs = model(pixel_values=_pixels_for(model, batch))
        return self.criterion(self._predictions(outputs), *self._targets(batch, outputs))

    def _predictions(self, outputs: Any) -> list[Prediction]:
        final = Prediction(outputs.logits, outputs.pred_boxes)
        if not self.loss_config.aux:
            return [final]
        # intermediate_* stack every decoder layer; the last one *is* logits/pred_boxes
        layers = [
            Prediction(
                outputs.intermediate_logits[:, i], outputs.intermediate_reference_points[:, i]
            )
            for i in range(outputs.intermediate_logits.shape[1] - 1)
        ]
        # RT-DETR also supervises the encoder's top-k proposals; without this the query
        # selection head (enc_score_head/enc_bbox_head) receives no gradient at all
        if outputs.enc_topk_logits is not None and outputs.enc_topk_bboxes is not None:
            layers.append(Prediction(outputs.enc_topk_logits, outputs.enc_topk_bboxes))
        return [final, *layers]

    @staticmethod
    def _targets(batch: Any, outputs: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        device = outputs.logits.device
        labels = [t["class_labels"].to(device) for t in batch["labels"]]
        boxes = [t["boxes"].to(device) for t in batch["labels"]]
        return labels, boxes

    def _postprocess(self, outputs: Any, targets: list[dict[str, Any]]) -> list[Detections]:
        logits = outputs.logits.float()
        probs = self.criterion.classification.probabilities(logits)
        batch, queries, classes = probs.shape
        # as many detections per image as queries, drawn from all query x class scores
        scores, flat_idx = probs.reshape(batch, -1).topk(queries, dim=1)
        query_idx = flat_idx // classes
        labels = flat_idx % classes
        boxes = box_cxcywh_to_xyxy(outputs.pred_boxes.float())
        boxes = boxes.gather(1, query_idx.unsqueeze(-1).expand(-1, -1, 4))
        detections = []
        for b, target in enumerate(targets):
            height, width = (int(v) for v in target["orig_size"])
            scale = boxes.new_tensor([width, height, width, height])
            detections.append(
                Detections(
                    image_id=int(target["image_id"]),
                    boxes=(boxes[b] * scale).cpu(),
                    scores=scores[b].cpu(),
                    labels=labels[b].cpu(),
                )
            )
        return detections


def _pixels_for(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    # a no-op when the training loop already placed the batch (e.g. Accelerate's loader)
    parameter = next(model.parameters(), None)
    pixels: torch.Tensor = batch["pixel_values"]
    return pixels if parameter is None else pixels.to(parameter.device)

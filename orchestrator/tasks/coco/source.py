"""Where a detection task's data comes from: the ``task.data`` section (synthetic or a COCO
folder, the models of :mod:`orchestrator.tasks.rtdetr.config`) turned into paths, category
ids and datasets. Torch-free at import; :meth:`DetectionSource.datasets` imports torch."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.tasks.coco.synthetic import CocoPaths, ensure_synthetic
from orchestrator.tasks.rtdetr.config import CocoData, SyntheticData, synthetic_spec

if TYPE_CHECKING:
    from orchestrator.tasks.coco.dataset import CocoDetection


def prepare_detection_data(data: SyntheticData | CocoData, data_root: Path) -> None:
    """Run once by the sweep driver: generate synthetic data under ``data_root`` (skipped if
    complete) or check the COCO paths, raising ``FileNotFoundError`` on the first missing."""
    if isinstance(data, SyntheticData):
        ensure_synthetic(Path(data_root), synthetic_spec(data))
        return
    for name in ("train_images", "train_annotations", "val_images", "val_annotations"):
        path = Path(getattr(data, name))
        if not path.exists():
            raise FileNotFoundError(f"task.data.{name} does not exist: {path}")


def describe_detection_data(
    data: SyntheticData | CocoData, data_root: Path
) -> list[dict[str, object]]:
    """The train and validation sets as MLflow dataset records (images, boxes, classes)."""
    from orchestrator.tasks.datasets import TRAINING, VALIDATION, dataset_record

    paths = DetectionSource(data, data_root).paths
    records = []
    for split, context, images, labels in (
        ("train", TRAINING, paths.train_images, paths.train_annotations),
        ("val", VALIDATION, paths.val_images, paths.val_annotations),
    ):
        coco = json.loads(Path(labels).read_text())
        profile = {
            "num_images": len(coco.get("images", [])),
            "num_boxes": len(coco.get("annotations", [])),
            "num_classes": len(coco.get("categories", [])),
        }
        records.append(
            dataset_record(
                f"{data.kind}-{split}",
                context,
                labels,
                profile,
                files=[labels],
                folders=[images],
            )
        )
    return records


class DetectionSource:
    """The train/val data of one ``task.data`` section, resolved under ``data_root``."""

    def __init__(self, data: SyntheticData | CocoData, data_root: Path):
        self.data = data
        self.data_root = Path(data_root)

    @property
    def image_size(self) -> int:
        """Side of the square images fed to the model."""
        return self.data.image_size

    @cached_property
    def paths(self) -> CocoPaths:
        """Where the train/val data lives (synthetic data is generated here if missing:
        generation is atomic, so a trial that finds it missing can safely write it too)."""
        data = self.data
        if isinstance(data, SyntheticData):
            return ensure_synthetic(self.data_root, synthetic_spec(data))
        return CocoPaths(
            train_images=Path(data.train_images),
            train_annotations=Path(data.train_annotations),
            val_images=Path(data.val_images),
            val_annotations=Path(data.val_annotations),
        )

    @cached_property
    def category_ids(self) -> list[int]:
        """COCO category id of each class index (sorted ids of the training annotations;
        validation is assumed to use the same categories, as COCO's splits do)."""
        data = self.data
        if isinstance(data, SyntheticData):
            return list(range(1, data.num_classes + 1))
        categories = json.loads(self.paths.train_annotations.read_text())["categories"]
        return sorted(int(c["id"]) for c in categories)

    def datasets(self) -> tuple[CocoDetection, CocoDetection]:
        """``(train, val)`` :class:`CocoDetection` datasets at :attr:`image_size`."""
        from orchestrator.tasks.coco.dataset import CocoDetection

        paths = self.paths
        train = CocoDetection(paths.train_images, paths.train_annotations, self.image_size)
        val = CocoDetection(paths.val_images, paths.val_annotations, self.image_size)
        return train, val

"""coco/source.py: the data section of a detection task -> paths, categories, datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.tasks.coco.source import DetectionSource, prepare_detection_data
from orchestrator.tasks.rtdetr.config import CocoData, SyntheticData


def _coco(tmp_path: Path) -> CocoData:
    annotations = tmp_path / "train.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [],
                "annotations": [],
                "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
            }
        )
    )
    return CocoData(
        kind="coco",
        train_images=str(tmp_path),
        train_annotations=str(annotations),
        val_images=str(tmp_path),
        val_annotations=str(annotations),
        image_size=64,
    )


def test_coco_folder_categories_are_the_sorted_ids(tmp_path: Path) -> None:
    source = DetectionSource(_coco(tmp_path), tmp_path / "unused")
    assert source.category_ids == [3, 7]
    assert source.paths.val_annotations == tmp_path / "train.json"
    assert source.image_size == 64
    prepare_detection_data(source.data, tmp_path)  # every path exists: no error


def test_missing_coco_path_is_named(tmp_path: Path) -> None:
    data = _coco(tmp_path).model_copy(update={"val_images": str(tmp_path / "nope")})
    with pytest.raises(FileNotFoundError, match=r"task\.data\.val_images does not exist: .*nope"):
        prepare_detection_data(data, tmp_path)


def test_synthetic_data_is_generated_once_and_found(tmp_path: Path) -> None:
    data = SyntheticData(num_train=2, num_val=1, image_size=32, num_classes=2, max_objects=1)
    prepare_detection_data(data, tmp_path)
    source = DetectionSource(data, tmp_path)
    assert source.category_ids == [1, 2]
    train, val = source.datasets()
    assert (len(train), len(val)) == (2, 1)
    assert source.paths.train_annotations.parent.parent == tmp_path

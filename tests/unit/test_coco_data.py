"""Synthetic generator, COCO dataset loading and COCO mAP evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from orchestrator.tasks.coco import synthetic
from orchestrator.tasks.coco.dataset import CocoDetection, collate_detection
from orchestrator.tasks.coco.evaluate import Detections, coco_map, load_coco
from orchestrator.tasks.coco.synthetic import SyntheticSpec, ensure_synthetic, synthetic_dir
from orchestrator.tasks.generated import MARKER

SMALL = SyntheticSpec(num_train=4, num_val=2, image_size=64, num_classes=3, max_objects=3)


def _folder_bytes(base: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


# ---- synthetic -------------------------------------------------------------------------


def test_synthetic_is_deterministic_per_seed(tmp_path: Path) -> None:
    ensure_synthetic(tmp_path / "a", SMALL)
    ensure_synthetic(tmp_path / "b", SMALL)
    a = _folder_bytes(synthetic_dir(tmp_path / "a", SMALL))
    b = _folder_bytes(synthetic_dir(tmp_path / "b", SMALL))
    assert a == b
    assert {"instances_train.json", "instances_val.json", MARKER, "train/000001.png"} <= set(a)

    other = SyntheticSpec(**{**SMALL.__dict__, "seed": 1})
    assert synthetic_dir(tmp_path, other) != synthetic_dir(tmp_path, SMALL)
    ensure_synthetic(tmp_path / "c", other)
    c = _folder_bytes(synthetic_dir(tmp_path / "c", other))
    assert c["instances_train.json"] != a["instances_train.json"]
    assert c["train/000001.png"] != a["train/000001.png"]


def test_synthetic_annotations_are_sane(tmp_path: Path) -> None:
    paths = ensure_synthetic(tmp_path, SMALL)
    coco = json.loads(paths.train_annotations.read_text())
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3]
    assert len(coco["images"]) == 4
    per_image: dict[int, int] = {}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert ann["iscrowd"] == 0 and ann["area"] == w * h
        assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64
        # objects are large: 15-60 % of the side
        assert 0.15 * 64 - 1 <= w <= 0.6 * 64 + 1 and 0.15 * 64 - 1 <= h <= 0.6 * 64 + 1
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    assert set(per_image) == {1, 2, 3, 4}  # every image has 1..max_objects objects
    assert all(1 <= n <= 3 for n in per_image.values())
    with Image.open(paths.train_images / "000001.png") as image:
        assert image.mode == "RGB" and image.size == (64, 64)


def test_synthetic_skips_completed_folders(tmp_path: Path) -> None:
    paths = ensure_synthetic(tmp_path, SMALL)
    marker = synthetic_dir(tmp_path, SMALL) / MARKER
    stamp = marker.stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, SMALL) == paths
    assert marker.stat().st_mtime_ns == stamp  # not regenerated


def test_synthetic_survives_a_lost_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = synthetic._write
    raced: list[bool] = []

    def write_while_another_process_finishes(base: Path, spec: SyntheticSpec) -> None:
        if not raced:
            raced.append(True)
            # the "other process" completes and renames its copy into place first
            ensure_synthetic(tmp_path, spec)
        real_write(base, spec)

    monkeypatch.setattr(synthetic, "_write", write_while_another_process_finishes)
    paths = ensure_synthetic(tmp_path, SMALL)
    assert raced and paths.train_annotations.is_file()
    # the loser's temporary folder is gone, the winner's copy is complete
    assert [p.name for p in tmp_path.iterdir()] == [synthetic_dir(tmp_path, SMALL).name]
    assert (synthetic_dir(tmp_path, SMALL) / MARKER).is_file()


# ---- dataset ---------------------------------------------------------------------------


def _tiny_coco(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (200, 100), (255, 0, 0)).save(images / "a.png")
    Image.new("RGB", (50, 50), (0, 0, 255)).save(images / "b.png")
    coco = {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 200, "height": 100},
            {"id": 3, "file_name": "b.png", "width": 50, "height": 50},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [20, 10, 100, 50], "area": 5000,
             "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 9, "bbox": [0, 0, 200, 100], "area": 20000,
             "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 9, "bbox": [0, 0, 10, 10], "area": 100,
             "iscrowd": 1},
        ],
        "categories": [{"id": 9, "name": "nine"}, {"id": 5, "name": "five"}],
    }  # fmt: skip
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(coco))
    return images, annotations


def test_coco_dataset_reads_and_normalises(tmp_path: Path) -> None:
    images, annotations = _tiny_coco(tmp_path)
    dataset = CocoDetection(images, annotations, image_size=64)
    assert len(dataset) == 2
    assert dataset.category_ids == [5, 9] and dataset.num_classes == 2

    # sorted by image id: id 3 (no annotations) first
    pixels, target = dataset[0]
    assert target["image_id"] == 3 and target["orig_size"] == (50, 50)
    assert target["boxes"].shape == (0, 4) and target["class_labels"].shape == (0,)
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32
    assert pixels[2].min().item() == 1.0 and pixels[0].max().item() == 0.0  # pure blue

    pixels, target = dataset[1]
    assert target["image_id"] == 7 and target["orig_size"] == (100, 200)
    assert float(pixels.max()) <= 1.0 and float(pixels.min()) >= 0.0
    # crowd annotation dropped; category 5 -> index 0, 9 -> index 1
    assert target["class_labels"].tolist() == [0, 1]
    # [20, 10, 100, 50] in a 200x100 image: centre (70, 35) -> (0.35, 0.35), size (0.5, 0.5)
    expected = torch.tensor([[0.35, 0.35, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    torch.testing.assert_close(target["boxes"], expected)

    batch = collate_detection([dataset[0], dataset[1]])
    assert batch["pixel_values"].shape == (2, 3, 64, 64)
    assert [t["image_id"] for t in batch["labels"]] == [3, 7]


# ---- evaluation ------------------------------------------------------------------------


def test_map_is_one_for_perfect_predictions_and_zero_for_none(tmp_path: Path) -> None:
    _, annotations = _tiny_coco(tmp_path)
    perfect = [
        Detections(
            image_id=7,
            boxes=[[20, 10, 120, 60], [0, 0, 200, 100]],  # xyxy of the two non-crowd boxes
            scores=[0.9, 0.8],
            labels=[0, 1],  # contiguous: 0 -> category 5, 1 -> category 9
        )
    ]
    metrics = coco_map(annotations, perfect)
    assert metrics == {"map": pytest.approx(1.0), "map_50": pytest.approx(1.0)}
    assert coco_map(load_coco(annotations), []) == {"map": 0.0, "map_50": 0.0}
    assert coco_map(annotations, [Detections(3, [], [], [])]) == {"map": 0.0, "map_50": 0.0}


def test_map_of_wrong_class_is_zero_and_output_is_silent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, annotations = _tiny_coco(tmp_path)
    swapped = [Detections(7, [[20, 10, 120, 60], [0, 0, 200, 100]], [0.9, 0.8], [1, 0])]
    assert coco_map(annotations, swapped) == {"map": 0.0, "map_50": 0.0}
    assert capsys.readouterr().out == ""

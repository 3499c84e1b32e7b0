"""Seeded generator of a small COCO-format detection set of coloured shapes.

Each class is a distinct (shape, colour) pair drawn on a noisy grey background, objects
15-60 % of the image side and mostly non-overlapping, so a tiny detector can learn it in
a few CPU minutes. Torch-free (numpy + PIL): the sweep driver runs it before any trial.

Layout of a generated folder (``<root>/synthetic-<hash>/``)::

    train/000001.png ...   instances_train.json
    val/000001.png ...     instances_val.json
    COMPLETE
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from orchestrator.tasks.generated import generate_once

#: bump when the drawing changes, so old folders are not reused for new semantics
GENERATOR_VERSION = 1

# (name, RGB); index = class index, category_id = index + 1
CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red_rectangle", (220, 40, 40)),
    ("green_ellipse", (40, 200, 60)),
    ("blue_triangle", (40, 70, 230)),
    ("yellow_diamond", (235, 220, 40)),
    ("magenta_cross", (220, 50, 210)),
    ("cyan_pentagon", (40, 215, 220)),
    ("orange_hexagon", (245, 140, 30)),
    ("purple_inverted_triangle", (120, 40, 170)),
)
MIN_SIDE, MAX_SIDE = 0.15, 0.6
MAX_OVERLAP_IOU = 0.1


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters that fully determine a generated set (and its folder name)."""

    num_train: int = 256
    num_val: int = 64
    image_size: int = 128
    num_classes: int = 3
    max_objects: int = 4
    seed: int = 0

    def key(self) -> str:
        """Short stable hash of the parameters and :data:`GENERATOR_VERSION`."""
        payload = json.dumps({**asdict(self), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CocoPaths:
    """Where a COCO-format train/val pair lives."""

    train_images: Path
    train_annotations: Path
    val_images: Path
    val_annotations: Path


def synthetic_dir(root: Path, spec: SyntheticSpec) -> Path:
    """The folder ``spec`` is (or will be) generated into under ``root``."""
    return Path(root) / f"synthetic-{spec.key()}"


def synthetic_paths(root: Path, spec: SyntheticSpec) -> CocoPaths:
    """The COCO paths of ``spec``'s folder (whether or not it exists yet)."""
    base = synthetic_dir(root, spec)
    return CocoPaths(
        train_images=base / "train",
        train_annotations=base / "instances_train.json",
        val_images=base / "val",
        val_annotations=base / "instances_val.json",
    )


def ensure_synthetic(root: Path, spec: SyntheticSpec) -> CocoPaths:
    """Generate ``spec`` under ``root`` unless a completed copy is already there.

    Safe against concurrent callers: each writes into its own temporary folder and renames
    it into place; the loser of a rename race discards its copy and uses the winner's.
    """
    generate_once(synthetic_dir(root, spec), lambda folder: _write(folder, spec))
    return synthetic_paths(root, spec)


def _write(base: Path, spec: SyntheticSpec) -> None:
    categories = [
        {"id": i + 1, "name": name, "supercategory": "shape"}
        for i, (name, _) in enumerate(CLASSES[: spec.num_classes])
    ]
    for split_index, (split, count) in enumerate(
        (("train", spec.num_train), ("val", spec.num_val))
    ):
        # one stream per split: the val set does not change when num_train does
        rng = np.random.default_rng([spec.seed, split_index])
        (base / split).mkdir()
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id in range(1, count + 1):
            file_name = f"{image_id:06d}.png"
            image, objects = _draw_image(rng, spec)
            image.save(base / split / file_name, format="PNG")
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": spec.image_size,
                    "height": spec.image_size,
                }
            )
            for label, (x, y, w, h) in objects:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": label + 1,
                        "bbox": [x, y, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        coco = {
            "info": {"description": f"synthetic shapes {asdict(spec)}"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (base / f"instances_{split}.json").write_text(json.dumps(coco, indent=1))


def _draw_image(
    rng: np.random.Generator, spec: SyntheticSpec
) -> tuple[Image.Image, list[tuple[int, tuple[int, int, int, int]]]]:
    size = spec.image_size
    grey = int(rng.integers(70, 170))
    noise = rng.normal(0.0, 12.0, size=(size, size, 3))
    pixels = np.clip(grey + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    wanted = int(rng.integers(1, spec.max_objects + 1))
    placed: list[tuple[int, tuple[int, int, int, int]]] = []
    for _ in range(wanted * 20):
        if len(placed) == wanted:
            break
        w = round(rng.uniform(MIN_SIDE, MAX_SIDE) * size)
        h = round(rng.uniform(MIN_SIDE, MAX_SIDE) * size)
        x = int(rng.integers(0, size - w + 1))
        y = int(rng.integers(0, size - h + 1))
        label = int(rng.integers(0, spec.num_classes))
        box = (x, y, w, h)
        # heavily overlapping shapes would hide each other and make boxes ambiguous
        if any(_iou(box, other) > MAX_OVERLAP_IOU for _, other in placed):
            continue
        jitter = rng.integers(-20, 21, size=3)
        colour = tuple(int(c) for c in np.clip(np.array(CLASSES[label][1]) + jitter, 0, 255))
        _draw_shape(draw, label, box, colour)
        placed.append((label, box))
    return image, placed


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    label: int,
    box: tuple[int, int, int, int],
    colour: tuple[int, ...],
) -> None:
    x, y, w, h = box
    # PIL boxes are inclusive, so the last covered pixel is x + w - 1
    x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1
    fill = (colour[0], colour[1], colour[2])
    name = CLASSES[label][0].split("_", 1)[1]
    if name == "rectangle":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif name == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    else:
        draw.polygon(_polygon(name, x0, y0, x1, y1), fill=fill)


def _polygon(name: str, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """Vertices (touching all four box sides, so the box is tight) of a polygon class."""
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2, y0 + h / 2
    if name == "triangle":
        return [(x0, y1), (x1, y1), (cx, y0)]
    if name == "inverted_triangle":
        return [(x0, y0), (x1, y0), (cx, y1)]
    if name == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    if name == "cross":
        a, b = 0.35, 0.65
        xs = [x0 + a * w, x0 + b * w]
        ys = [y0 + a * h, y0 + b * h]
        return [
            (xs[0], y0), (xs[1], y0), (xs[1], ys[0]), (x1, ys[0]), (x1, ys[1]), (xs[1], ys[1]),
            (xs[1], y1), (xs[0], y1), (xs[0], ys[1]), (x0, ys[1]), (x0, ys[0]), (xs[0], ys[0]),
        ]  # fmt: skip
    if name == "pentagon":
        return [
            (cx, y0), (x1, y0 + 0.38 * h), (x0 + 0.81 * w, y1), (x0 + 0.19 * w, y1),
            (x0, y0 + 0.38 * h),
        ]  # fmt: skip
    if name == "hexagon":
        return [
            (x0, cy), (x0 + 0.25 * w, y0), (x0 + 0.75 * w, y0), (x1, cy),
            (x0 + 0.75 * w, y1), (x0 + 0.25 * w, y1),
        ]  # fmt: skip
    raise ValueError(f"unknown shape {name!r}")


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)

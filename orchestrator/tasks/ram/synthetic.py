"""Seeded generator of a small multi-label tagging set, written in the folder format the
``ram`` task also reads for real data (docs/ram.md). Torch-free (numpy + PIL).

Each tag is a (colour, shape) pair such as ``red_circle``; its coarse tag (``groups.json``)
is the shape. An image holds 1 to ``max_objects`` shapes on a noisy grey background; each
object's tag is drawn from a Zipf law over a seeded order of the tags, so the tag
frequencies are long-tailed like a real vocabulary's. Layout (``<root>/ram-<hash>/``)::

    train/images/000001.png ...   train/tags.json
    val/images/000001.png ...     val/tags.json
    groups.json                   COMPLETE
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from orchestrator.tasks.generated import generate_once
from orchestrator.tasks.ram.config import RamFolderData, RamSyntheticData

#: bump when the drawing changes, so old folders are not reused for new semantics
GENERATOR_VERSION = 1

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 40, 40)),
    ("green", (40, 200, 60)),
    ("blue", (40, 70, 230)),
    ("yellow", (235, 220, 40)),
    ("magenta", (220, 50, 210)),
    ("cyan", (40, 215, 220)),
    ("orange", (245, 140, 30)),
    ("white", (245, 245, 245)),
)
MIN_SIDE, MAX_SIDE = 0.3, 0.5


def tag_names(num_tags: int) -> list[tuple[str, str, tuple[int, int, int]]]:
    """``(tag, shape, rgb)`` of the first ``num_tags`` tags: shapes vary fastest, so even a
    small vocabulary has every shape (coarse tag) in several colours."""
    out = []
    for index in range(num_tags):
        shape = SHAPES[index % len(SHAPES)]
        colour, rgb = COLOURS[index // len(SHAPES)]
        out.append((f"{colour}_{shape}", shape, rgb))
    return out


def tag_probabilities(spec: RamSyntheticData) -> np.ndarray:
    """P(an object has tag i): Zipf ``1 / rank^zipf`` over a seeded random order of tags."""
    ranks = np.random.default_rng([spec.seed, 99]).permutation(spec.num_tags) + 1
    weights = 1.0 / ranks.astype(np.float64) ** spec.zipf
    return weights / weights.sum()


def synthetic_dir(root: Path, spec: RamSyntheticData) -> Path:
    """The folder ``spec`` is (or will be) generated into under ``root``."""
    payload = json.dumps({**spec.model_dump(), "version": GENERATOR_VERSION}, sort_keys=True)
    return Path(root) / f"ram-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def folder_data(root: Path, spec: RamSyntheticData) -> RamFolderData:
    """``spec``'s generated folder described as folder data (whether or not it exists)."""
    base = synthetic_dir(root, spec)
    return RamFolderData(
        kind="folder",
        train_images=str(base / "train" / "images"),
        train_tags=str(base / "train" / "tags.json"),
        val_images=str(base / "val" / "images"),
        val_tags=str(base / "val" / "tags.json"),
        groups=str(base / "groups.json"),
        image_size=spec.image_size,
    )


def ensure_synthetic(root: Path, spec: RamSyntheticData) -> RamFolderData:
    """Generate ``spec`` under ``root`` unless a completed copy is there; safe against
    concurrent callers (each writes a temporary folder and renames it into place)."""
    generate_once(synthetic_dir(root, spec), lambda folder: _write(folder, spec))
    return folder_data(root, spec)


def _write(base: Path, spec: RamSyntheticData) -> None:
    tags = tag_names(spec.num_tags)
    groups = {name: shape for name, shape, _ in tags}
    (base / "groups.json").write_text(json.dumps(groups, indent=1))
    probabilities = tag_probabilities(spec)
    for split_index, (split, count) in enumerate(
        (("train", spec.num_train), ("val", spec.num_val))
    ):
        # one stream per split: the val set does not change when num_train does
        rng = np.random.default_rng([spec.seed, split_index])
        images = base / split / "images"
        images.mkdir(parents=True)
        listing: dict[str, list[str]] = {}
        for number in range(1, count + 1):
            name = f"{number:06d}.png"
            image, labels = _draw_image(rng, spec, tags, probabilities)
            image.save(images / name, format="PNG")
            listing[name] = sorted({tags[i][0] for i in labels})
        (base / split / "tags.json").write_text(json.dumps(listing, indent=1))


def _draw_image(
    rng: np.random.Generator,
    spec: RamSyntheticData,
    tags: list[tuple[str, str, tuple[int, int, int]]],
    probabilities: np.ndarray,
) -> tuple[Image.Image, list[int]]:
    size = spec.image_size
    grey = int(rng.integers(70, 170))
    noise = rng.normal(0.0, 10.0, size=(size, size, 3))
    image = Image.fromarray(np.clip(grey + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(1, spec.max_objects + 1))
    labels = [int(i) for i in rng.choice(len(tags), size=count, p=probabilities)]
    for label in labels:
        side = round(rng.uniform(MIN_SIDE, MAX_SIDE) * size)
        x = int(rng.integers(0, size - side + 1))
        y = int(rng.integers(0, size - side + 1))
        jitter = rng.integers(-15, 16, size=3)
        rgb = np.clip(np.array(tags[label][2]) + jitter, 0, 255)
        _draw_shape(draw, tags[label][1], (x, y, x + side - 1, y + side - 1), rgb)
    return image, labels


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], rgb: np.ndarray
) -> None:
    x0, y0, x1, y1 = box
    fill = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2, y0 + h / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, w // 5))
    elif shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), (cx, y0)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif shape == "cross":
        draw.rectangle((x0 + 0.35 * w, y0, x0 + 0.65 * w, y1), fill=fill)
        draw.rectangle((x0, y0 + 0.35 * h, x1, y0 + 0.65 * h), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")

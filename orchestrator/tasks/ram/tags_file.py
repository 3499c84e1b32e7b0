"""Reading the ``ram`` task's tag files (docs/ram.md). Torch-free, so the sweep driver can
check a folder data set before any trial starts.

A tags file lists the tags of each image, by file name relative to the images folder:

* ``.json``: ``{"000001.png": ["red_circle", "blue_square"], ...}``
* ``.csv``: a header with columns ``image`` and ``tags``; tags separated by ``|``
  (``000001.png,red_circle|blue_square``); an empty ``tags`` cell is an image without tags.

A groups file (optional, ``.json``) maps every tag to a coarse tag:
``{"red_circle": "circle", ...}``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.tasks.ram.config import RamFolderData

TAG_SEPARATOR = "|"


def read_tags(path: str | Path) -> dict[str, list[str]]:
    """``{image file: [tags]}`` from a ``.json`` or ``.csv`` tags file, in file order.

    Raises ``ValueError`` naming the file (and row) on a malformed entry.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object {{image: [tags]}}, got {type(data)}")
        out: dict[str, list[str]] = {}
        for image, tags in data.items():
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError(
                    f"{path}: {image!r}: tags must be a list of strings, got {tags!r}"
                )
            out[image] = _unique(tags)
        return out
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if "image" not in columns or "tags" not in columns:
                raise ValueError(f"{path}: needs columns 'image' and 'tags', got {columns}")
            out = {}
            for row_number, row in enumerate(reader, start=2):
                image = (row["image"] or "").strip()
                if not image:
                    raise ValueError(f"{path}:{row_number}: empty image name")
                if image in out:
                    raise ValueError(f"{path}:{row_number}: image {image!r} listed twice")
                cell = row["tags"] or ""
                out[image] = _unique(t.strip() for t in cell.split(TAG_SEPARATOR) if t.strip())
            return out
    raise ValueError(f"{path}: tags file must end in .json or .csv")


def read_groups(path: str | Path) -> dict[str, str]:
    """``{tag: coarse tag}`` from a JSON groups file."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected an object {{tag: coarse tag}} of strings")
    return dict(data)


def vocabulary(tags: dict[str, list[str]]) -> list[str]:
    """The tag vocabulary: every tag of the training file, sorted (tags only the validation
    file has cannot be learnt and are ignored)."""
    return sorted({t for image_tags in tags.values() for t in image_tags})


def check_folder(data: RamFolderData) -> None:
    """Every file exists, both tag files parse, every listed image exists, the training
    file has at least one tag, and ``groups`` (if given) covers the vocabulary."""
    for key in ("train_images", "train_tags", "val_images", "val_tags", "groups"):
        value = getattr(data, key)
        if value is not None and not Path(value).exists():
            raise FileNotFoundError(f"task.data.{key} does not exist: {value}")
    train = read_tags(data.train_tags)
    for key, images, tags in (
        ("train_tags", data.train_images, train),
        ("val_tags", data.val_images, read_tags(data.val_tags)),
    ):
        if not tags:
            raise ValueError(f"task.data.{key}: {getattr(data, key)} lists no images")
        missing = [name for name in tags if not (Path(images) / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"task.data.{key}: {len(missing)} listed images are not in {images}, "
                f"e.g. {missing[0]!r}"
            )
    vocab = vocabulary(train)
    if not vocab:
        raise ValueError(f"task.data.train_tags: {data.train_tags} has no tags at all")
    if data.groups is not None:
        groups = read_groups(data.groups)
        ungrouped = [t for t in vocab if t not in groups]
        if ungrouped:
            raise ValueError(
                f"task.data.groups: {data.groups} has no coarse tag for {len(ungrouped)} "
                f"training tags, e.g. {ungrouped[0]!r}"
            )


def _unique(tags: Iterable[str]) -> list[str]:
    # a tag listed twice for one image is still one positive
    return list(dict.fromkeys(tags))

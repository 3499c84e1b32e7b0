"""A tiny COCO-format detection set for trying an external detector on a CPU: coloured
boxes on a plain background, 2 categories (ids 1 and 2), 16 training and 8 validation
images of 128 x 128 px.

    python examples/rtdetr_cpu/make_mini_coco.py ~/data/mini

writes ``train/``, ``val/``, ``train.json`` and ``val.json`` there. Needs only Pillow.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {1: (230, 40, 40), 2: (40, 40, 230)}


def write_split(root: Path, split: str, count: int, rng: random.Random) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        background = tuple(rng.randrange(60, 120) for _ in range(3))
        image = Image.new("RGB", (128, 128), background)
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(1, 3)):
            category = rng.choice([1, 2])
            w, h = rng.randint(20, 60), rng.randint(20, 60)
            x, y = rng.randint(0, 128 - w), rng.randint(0, 128 - h)
            draw.rectangle([x, y, x + w, y + h], fill=COLOURS[category])
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": category, "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0})  # fmt: skip
        name = f"{i:06d}.jpg"
        image.save(root / split / name)
        images.append({"id": i + 1, "file_name": name, "width": 128, "height": 128})
    categories = [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / f"{split}.json").write_text(json.dumps(coco))


def main(root: Path) -> None:
    rng = random.Random(0)
    write_split(root, "train", 16, rng)
    write_split(root, "val", 8, rng)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""COCO box mAP with pycocotools, quiet and robust to empty predictions."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


@dataclass
class Detections:
    """Predictions for one image: ``boxes`` absolute ``xyxy`` in the original image size,
    ``labels`` contiguous class indices (sorted category-id order). Any sequence type works
    (lists, numpy arrays, tensors)."""

    image_id: int
    boxes: Sequence[Sequence[float]] | Any
    scores: Sequence[float] | Any
    labels: Sequence[int] | Any


def load_coco(annotation_file: str | Path) -> COCO:
    """A pycocotools ``COCO`` object, without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(annotation_file))


def coco_map(
    ground_truth: str | Path | COCO,
    predictions: Iterable[Detections],
    *,
    image_ids: Iterable[int] | None = None,
    category_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """``{"map": AP@[.5:.95], "map_50": AP@.5}`` of ``predictions`` against ``ground_truth``.

    ``image_ids`` restricts the evaluation to those images (e.g. the ones a loader visited);
    default all ground-truth images. ``category_ids`` maps contiguous labels to COCO
    category ids; default the ground truth's ids in sorted order (as
    :class:`~orchestrator.tasks.coco.dataset.CocoDetection` numbers them). No predictions
    gives 0.0 for both; pycocotools' -1 ("no ground truth") is reported as 0.0 too.
    """
    gt = ground_truth if isinstance(ground_truth, COCO) else load_coco(ground_truth)
    cat_ids = list(category_ids) if category_ids is not None else sorted(gt.getCatIds())
    results: list[dict[str, Any]] = []
    for det in predictions:
        for box, score, label in zip(
            _as_list(det.boxes), _as_list(det.scores), _as_list(det.labels), strict=True
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": int(det.image_id),
                    "category_id": cat_ids[int(label)],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    if not results:
        return {"map": 0.0, "map_50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted({int(i) for i in image_ids})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"map": max(float(stats[0]), 0.0), "map_50": max(float(stats[1]), 0.0)}


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)

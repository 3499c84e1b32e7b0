"""COCO-format detection data: a synthetic generator, a Dataset and COCO mAP evaluation.

Submodules are imported directly (``orchestrator.tasks.coco.synthetic`` is torch-free and
used by the sweep driver; ``dataset`` and ``evaluate`` need torch / pycocotools).
"""

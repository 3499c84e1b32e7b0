"""Config models of the ``detector`` task (a two-stage Faster R-CNN). Torch-free by design:
only pydantic and the standard library are imported at module level.

Names follow MMDetection's Faster R-CNN config where one exists (``train_cfg.rpn.sampler``
-> ``loss.rpn.sampler`` ...); the mapping is tabulated in docs/detector.md. Assigner and
sampler settings live under ``loss:`` because they decide which anchors and RoIs each loss
term sees, and ``loss.*`` is what a sweep may search.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from orchestrator.config.base import StrictModel
from orchestrator.config.task import DataTaskConfig, LossConfig, TaskSpec, register_task
from orchestrator.tasks.rtdetr.config import CocoData, SyntheticData


class AnchorConfig(StrictModel):
    """Anchors per feature cell: one per (scale, ratio); side = scale x stride, ratio = h / w
    (MMDetection's ``AnchorGenerator``). The feature map has stride 8, so the default scales
    give 16, 32 and 64 pixel anchors, matching objects of 15-60 % of a 128 pixel image."""

    scales: list[float] = Field(default=[2.0, 4.0, 8.0], min_length=1)
    ratios: list[float] = Field(default=[0.5, 1.0, 2.0], min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> AnchorConfig:
        for name in ("scales", "ratios"):
            bad = [v for v in getattr(self, name) if v <= 0]
            if bad:
                raise ValueError(f"anchor {name} must be > 0, got {bad}")
        return self


class ProposalConfig(StrictModel):
    """How RPN outputs become RoI proposals (MMDetection's ``rpn`` train/test cfg)."""

    nms_pre: int = Field(default=500, ge=1)
    max_per_img_train: int = Field(default=200, ge=1)
    max_per_img_test: int = Field(default=100, ge=1)
    nms_iou: float = Field(default=0.7, gt=0, le=1)
    min_size: float = Field(default=1.0, ge=0)


class InferenceConfig(StrictModel):
    """Post-processing of the box head (MMDetection's ``test_cfg.rcnn``)."""

    score_thr: float = Field(default=0.05, ge=0, lt=1)
    nms_iou: float = Field(default=0.5, gt=0, le=1)
    max_per_img: int = Field(default=100, ge=1)


class DetectorModelConfig(StrictModel):
    """Network size: a tiny randomly initialised ResNet-like backbone, stride-8 features."""

    channels: int = Field(default=64, ge=8)
    head_dim: int = Field(default=256, ge=8)
    roi_size: int = Field(default=7, ge=1)
    sampling_ratio: int = Field(default=2, ge=1)
    anchor: AnchorConfig = AnchorConfig()
    proposals: ProposalConfig = ProposalConfig()
    test: InferenceConfig = InferenceConfig()


class DetectorTaskConfig(DataTaskConfig):
    """The ``task:`` section for ``kind: detector``; ``data`` is the same as ``rtdetr``'s."""

    kind: Literal["detector"] = "detector"
    model: DetectorModelConfig = DetectorModelConfig()
    data: SyntheticData | CocoData = Field(default=SyntheticData(), discriminator="kind")
    num_workers: int = Field(default=0, ge=0)


class AssignerConfig(StrictModel):
    """Max-IoU assignment (MMDetection's ``MaxIoUAssigner``): IoU >= ``pos_iou_thr`` is
    positive, IoU < ``neg_iou_thr`` negative, in between ignored; with
    ``match_low_quality`` each ground truth also claims its best candidates if their IoU
    is >= ``min_pos_iou``, so small or odd-shaped objects still get a positive. Defaults
    are the RoI head's (``rcnn``); :class:`RpnAssignerConfig` has the RPN's."""

    pos_iou_thr: float = Field(default=0.5, gt=0, le=1)
    neg_iou_thr: float = Field(default=0.5, ge=0, le=1)
    min_pos_iou: float = Field(default=0.5, ge=0, le=1)
    match_low_quality: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> AssignerConfig:
        if self.neg_iou_thr > self.pos_iou_thr:
            raise ValueError(
                "neg_iou_thr must be <= pos_iou_thr, got "
                f"neg_iou_thr={self.neg_iou_thr} pos_iou_thr={self.pos_iou_thr}"
            )
        if self.min_pos_iou > self.pos_iou_thr:
            raise ValueError(
                "min_pos_iou must be <= pos_iou_thr, got "
                f"min_pos_iou={self.min_pos_iou} pos_iou_thr={self.pos_iou_thr}"
            )
        return self


class RpnAssignerConfig(AssignerConfig):
    """The RPN's assigner defaults (anchors): 0.7 / 0.3 / 0.3 with low-quality matches."""

    pos_iou_thr: float = Field(default=0.7, gt=0, le=1)
    neg_iou_thr: float = Field(default=0.3, ge=0, le=1)
    min_pos_iou: float = Field(default=0.3, ge=0, le=1)
    match_low_quality: bool = True


class SamplerConfig(StrictModel):
    """Random sampling of the assigned candidates (MMDetection's ``RandomSampler``): at most
    ``num`` per image, of which at most ``num x pos_fraction`` positives; negatives fill the
    rest. Defaults are the RoI head's (512 / 0.25); :class:`RpnSamplerConfig` has the RPN's."""

    num: int = Field(default=512, ge=1)
    pos_fraction: float = 0.25

    @model_validator(mode="after")
    def _fraction(self) -> SamplerConfig:
        if not 0 < self.pos_fraction <= 1:
            raise ValueError(f"pos_fraction must be in (0, 1], got {self.pos_fraction}")
        return self


class RpnSamplerConfig(SamplerConfig):
    """The RPN's sampler defaults: 256 anchors per image, half of them positive at most."""

    num: int = Field(default=256, ge=1)
    pos_fraction: float = 0.5


class RpnStageConfig(StrictModel):
    """Assigner + sampler of the RPN over anchors (MMDetection's ``train_cfg.rpn``)."""

    assigner: RpnAssignerConfig = RpnAssignerConfig()
    sampler: RpnSamplerConfig = RpnSamplerConfig()


class RcnnStageConfig(StrictModel):
    """Assigner + sampler of the RoI head over proposals (``train_cfg.rcnn``); ground-truth
    boxes are always added to the proposals, as MMDetection's ``add_gt_as_proposals``."""

    assigner: AssignerConfig = AssignerConfig()
    sampler: SamplerConfig = SamplerConfig()


class FocalParams(StrictModel):
    """Sigmoid focal loss of the box classifier (MMDetection's ``FocalLoss``)."""

    gamma: float = Field(default=2.0, ge=0)
    alpha: float = Field(default=0.25, gt=0, lt=1)


class CEParams(StrictModel):
    """Softmax cross-entropy: weight of the background class (the last ``class_weight``)."""

    bg_weight: float = Field(default=1.0, gt=0, le=1)


class DetectorLossWeights(StrictModel):
    """``loss_weight`` of each term: box classifier, box regression, RPN objectness, RPN box."""

    cls: float = Field(default=1.0, ge=0)
    bbox: float = Field(default=1.0, ge=0)
    rpn_cls: float = Field(default=1.0, ge=0)
    rpn_bbox: float = Field(default=1.0, ge=0)


class DetectorLossConfig(LossConfig):
    """The ``loss:`` section for ``kind: detector``.

    ``cls`` is the box head's classification loss: ``ce`` (softmax over ``num_classes + 1``,
    background last) or ``focal`` (one sigmoid per class, background = all zeros).
    ``reduction``: ``mean`` averages each term over the sampled anchors/RoIs of the whole
    micro-batch (MMDetection's ``avg_factor``); ``sum`` averages within each image and sums
    over images, so a step's loss grows with the effective batch (the loop sums it over the
    accumulated micro-batches and workers).
    """

    cls: Literal["ce", "focal"] = "ce"
    focal: FocalParams = FocalParams()
    ce: CEParams = CEParams()
    weight: DetectorLossWeights = DetectorLossWeights()
    reduction: Literal["mean", "sum"] = "mean"
    rpn: RpnStageConfig = RpnStageConfig()
    rcnn: RcnnStageConfig = RcnnStageConfig()


def prepare_data(config: DetectorTaskConfig, data_root: Path) -> None:
    """Generate the synthetic set or check the COCO paths (shared with ``rtdetr``)."""
    from orchestrator.tasks.coco.source import prepare_detection_data

    prepare_detection_data(config.data, data_root)


def describe_data(config: DetectorTaskConfig, data_root: Path) -> list[dict[str, object]]:
    """The train/val sets as MLflow dataset records (run after :func:`prepare_data`)."""
    from orchestrator.tasks.coco.source import describe_detection_data

    return describe_detection_data(config.data, data_root)


#: what a trial of this task reports (the task class reads the same names)
VAL_METRICS: tuple[str, ...] = ("val/map", "val/map_50")
COMPONENTS: tuple[str, ...] = ("cls", "bbox", "rpn_cls", "rpn_bbox")

register_task(
    "detector",
    TaskSpec(
        config=DetectorTaskConfig,
        loss=DetectorLossConfig,
        impl="orchestrator.tasks.detector.task:DetectorTask",
        prepare=prepare_data,
        describe=describe_data,
        val_metrics=VAL_METRICS,
        components=COMPONENTS,
    ),
)

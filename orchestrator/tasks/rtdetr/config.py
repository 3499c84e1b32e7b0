"""Config models of the ``rtdetr`` task and its data preparation. Torch-free by design:
only pydantic and the standard library are imported at module level."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.config.base import StrictModel
from orchestrator.config.task import DataTaskConfig, LossConfig, TaskSpec, register_task

if TYPE_CHECKING:
    from orchestrator.tasks.coco.synthetic import SyntheticSpec


class RTDetrModelConfig(StrictModel):
    """Which network: a randomly initialised preset, or a local Hugging Face checkpoint."""

    preset: Literal["tiny", "small"] | None = "tiny"
    checkpoint: str | None = None
    num_queries: int = Field(default=50, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _checkpoint_replaces_default_preset(cls, data: Any) -> Any:
        # ``checkpoint: x`` alone means "no preset", not "tiny and a checkpoint"
        if isinstance(data, dict) and data.get("checkpoint") is not None and "preset" not in data:
            return {**data, "preset": None}
        return data

    @model_validator(mode="after")
    def _exactly_one_source(self) -> RTDetrModelConfig:
        if (self.preset is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of model.preset and model.checkpoint")
        return self


def _check_image_size(value: int) -> int:
    # the backbone's deepest stride is 32; other sizes give feature maps the hybrid encoder's
    # up/down-sampling paths cannot concatenate
    if value % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {value}")
    return value


class SyntheticData(StrictModel):
    """The generated shapes set (see :mod:`orchestrator.tasks.coco.synthetic`)."""

    kind: Literal["synthetic"] = "synthetic"
    num_train: int = Field(default=256, ge=1)
    num_val: int = Field(default=64, ge=1)
    image_size: int = Field(default=128, ge=32)
    num_classes: int = Field(default=3, ge=1, le=8)
    max_objects: int = Field(default=4, ge=1)
    seed: int = 0

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value: int) -> int:
        return _check_image_size(value)


class CocoData(StrictModel):
    """An existing COCO-format dataset on local disk."""

    kind: Literal["coco"]
    train_images: str
    train_annotations: str
    val_images: str
    val_annotations: str
    image_size: int = Field(default=320, ge=32)

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value: int) -> int:
        return _check_image_size(value)


class RTDetrTaskConfig(DataTaskConfig):
    """The ``task:`` section for ``kind: rtdetr``."""

    kind: Literal["rtdetr"] = "rtdetr"
    model: RTDetrModelConfig = RTDetrModelConfig()
    data: SyntheticData | CocoData = Field(default=SyntheticData(), discriminator="kind")
    num_workers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _enough_anchors(self) -> RTDetrTaskConfig:
        # RT-DETR picks its queries as the top-k of one anchor per cell of the stride 8/16/32
        # feature maps; fewer cells than queries fails inside torch.topk at the first step
        size = self.data.image_size
        anchors = sum((size // stride) ** 2 for stride in (8, 16, 32))
        if self.model.num_queries > anchors:
            raise ValueError(
                f"model.num_queries={self.model.num_queries} exceeds the {anchors} anchors of "
                f"a {size}x{size} image; lower it or raise data.image_size"
            )
        return self


class FocalParams(StrictModel):
    """Focusing parameters shared by the varifocal and focal classification losses."""

    gamma: float = Field(default=2.0, ge=0)
    alpha: float = Field(default=0.75, gt=0, lt=1)


class CEParams(StrictModel):
    """Softmax cross-entropy: weight of the background (no-object) class."""

    bg_weight: float = Field(default=1.0, gt=0, le=1)


class LossWeights(StrictModel):
    """Weights of the classification, L1 box and GIoU components in the total loss."""

    cls: float = Field(default=1.0, ge=0)
    bbox: float = Field(default=5.0, ge=0)
    giou: float = Field(default=2.0, ge=0)


class MatcherCosts(StrictModel):
    """Weights of the Hungarian matching cost terms."""

    cls: float = Field(default=2.0, ge=0)
    bbox: float = Field(default=5.0, ge=0)
    giou: float = Field(default=2.0, ge=0)


class RTDetrLossConfig(LossConfig):
    """The ``loss:`` section for ``kind: rtdetr``.

    ``cls`` picks the classification loss: ``vfl`` (RT-DETR's varifocal), ``focal``, plain
    sigmoid ``bce``, or softmax ``ce`` with a background class (the model then gets
    ``num_classes + 1`` logits). ``aux`` adds the same loss on every intermediate decoder
    layer and on the encoder's top-k query proposals, summed into each component.
    """

    cls: Literal["vfl", "focal", "bce", "ce"] = "vfl"
    weight: LossWeights = LossWeights()
    focal: FocalParams = FocalParams()
    ce: CEParams = CEParams()
    aux: bool = True
    matcher: MatcherCosts = MatcherCosts()


def prepare_data(config: RTDetrTaskConfig, data_root: Path) -> None:
    """Run once by the sweep driver before trials start.

    Synthetic data is generated under ``data_root`` (skipped if already complete); COCO paths
    are checked, raising ``FileNotFoundError`` naming the first missing one.
    """
    # one implementation for every detection task (the detector task shares this data)
    from orchestrator.tasks.coco.source import prepare_detection_data

    prepare_detection_data(config.data, data_root)


def synthetic_spec(data: SyntheticData) -> SyntheticSpec:
    """The generator's :class:`~orchestrator.tasks.coco.synthetic.SyntheticSpec` for ``data``."""
    from orchestrator.tasks.coco.synthetic import SyntheticSpec

    return SyntheticSpec(
        num_train=data.num_train,
        num_val=data.num_val,
        image_size=data.image_size,
        num_classes=data.num_classes,
        max_objects=data.max_objects,
        seed=data.seed,
    )


def describe_data(config: RTDetrTaskConfig, data_root: Path) -> list[dict[str, object]]:
    """The train/val sets as MLflow dataset records (run after :func:`prepare_data`)."""
    from orchestrator.tasks.coco.source import describe_detection_data

    return describe_detection_data(config.data, data_root)


#: what a trial of this task reports (the task class reads the same names)
VAL_METRICS: tuple[str, ...] = ("val/map", "val/map_50", "val/loss_raw")
COMPONENTS: tuple[str, ...] = ("cls", "bbox", "giou")

register_task(
    "rtdetr",
    TaskSpec(
        config=RTDetrTaskConfig,
        loss=RTDetrLossConfig,
        impl="orchestrator.tasks.rtdetr.task:RTDetrTask",
        prepare=prepare_data,
        describe=describe_data,
        val_metrics=VAL_METRICS,
        components=COMPONENTS,
    ),
)

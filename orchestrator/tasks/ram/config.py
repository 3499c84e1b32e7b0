"""Config models of the ``ram`` task and its data preparation. Torch-free by design: only
pydantic and the standard library are imported at module level."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.config.base import StrictModel
from orchestrator.config.task import DataTaskConfig, LossConfig, TaskSpec, register_task


class TagNetConfig(StrictModel):
    """The student: four conv stages (``width`` channels, doubling per stride-2 stage),
    global average pooling, an ``embed_dim`` image embedding and linear tag heads."""

    width: int = Field(16, ge=4, le=256)
    embed_dim: int = Field(64, ge=8, le=4096)


class TeacherConfig(StrictModel):
    """The frozen teacher whose image embedding the student distils (RAM uses CLIP's).

    Either a small random conv network built from ``seed`` (no download; a fixed feature
    target, enough to exercise the loss), or ``checkpoint``: a ``torch.export`` program
    (``torch.export.save``, ``.pt2``) mapping float images ``(B, 3, S, S)`` in ``[0, 1]`` at
    the task's ``image_size`` to embeddings ``(B, D)``. ``normalize`` standardises each
    embedding (zero mean, unit variance over ``D``) so the L1 term's scale does not depend
    on the teacher's arbitrary feature scale.
    """

    seed: int = 1
    width: int = Field(16, ge=4, le=256)
    dim: int = Field(32, ge=2, le=4096)
    checkpoint: str | None = None
    normalize: bool = True


class RamSyntheticData(StrictModel):
    """Generated multi-label images (see :mod:`orchestrator.tasks.ram.synthetic`): each tag
    is a (colour, shape) pair, its coarse group the shape; tags are drawn from a Zipf law
    of exponent ``zipf`` over a seeded order, so a few are common and most are rare."""

    kind: Literal["synthetic"] = "synthetic"
    num_train: int = Field(256, ge=1)
    num_val: int = Field(64, ge=1)
    image_size: int = Field(48, ge=16, le=512)
    num_tags: int = Field(30, ge=2, le=48)
    max_objects: int = Field(4, ge=1, le=12)
    zipf: float = Field(1.0, ge=0, le=4)
    seed: int = 0


class RamFolderData(StrictModel):
    """Tagged images on local disk (format in docs/ram.md): an images folder and a tags file
    per split (``.json``: ``{"file.png": ["tag", ...]}``; ``.csv``: columns ``image,tags``
    with ``|``-separated tags); optionally ``groups``, a JSON ``{"tag": "coarse tag"}``
    that enables the coarse term."""

    kind: Literal["folder"]
    train_images: str
    train_tags: str
    val_images: str
    val_tags: str
    groups: str | None = None
    image_size: int = Field(64, ge=16, le=1024)


class RamTaskConfig(DataTaskConfig):
    """The ``task:`` section for ``kind: ram``."""

    kind: Literal["ram"] = "ram"
    model: TagNetConfig = TagNetConfig()
    teacher: TeacherConfig = TeacherConfig()
    data: RamSyntheticData | RamFolderData = Field(
        default=RamSyntheticData(), discriminator="kind"
    )
    #: a tag is predicted when its probability reaches this (val/f1, precision, recall)
    threshold: float = Field(0.5, gt=0, lt=1)
    num_workers: int = Field(0, ge=0)


class AslParams(StrictModel):
    """Asymmetric loss knobs (RAM's tagging loss: gamma_neg 7, gamma_pos 0, clip 0.05)."""

    gamma_neg: float = Field(7.0, ge=0, le=20)
    gamma_pos: float = Field(0.0, ge=0, le=20)
    clip: float = Field(0.05, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0, le=1e-2)


class RamWeights(StrictModel):
    """Fixed weights of the tagging, distillation and coarse-tag terms (``coarse: 0`` turns
    the optional term off)."""

    tag: float = Field(1.0, ge=0)
    distill: float = Field(1.0, ge=0)
    coarse: float = Field(0.0, ge=0)


class RamLossConfig(LossConfig):
    """The ``loss:`` section for ``kind: ram``.

    ``reduction`` applies to every term: ``sum`` (RAM) adds over the micro-batch's samples
    (ASL also over tags; distillation averages over embedding dims first), so the terms grow
    with batch size and the trial loop rescales the total to the effective batch; ``mean``
    averages instead (ASL over samples and tags).
    """

    asl: AslParams = AslParams()
    reduction: Literal["sum", "mean"] = "sum"
    weight: RamWeights = RamWeights()


def prepare_data(config: RamTaskConfig, data_root: Path) -> None:
    """Run once by the sweep driver before trials start: generate the synthetic set under
    ``data_root`` (skipped if complete), or read a folder set's tag files and check every
    image and group exists, raising ``FileNotFoundError``/``ValueError`` naming the key."""
    from orchestrator.tasks.ram.synthetic import ensure_synthetic
    from orchestrator.tasks.ram.tags_file import check_folder

    data = config.data
    if isinstance(data, RamSyntheticData):
        ensure_synthetic(Path(data_root), data)
    else:
        check_folder(data)
    teacher = config.teacher.checkpoint
    if teacher is not None and not Path(teacher).is_file():
        raise FileNotFoundError(f"task.teacher.checkpoint does not exist: {teacher}")


def describe_data(config: RamTaskConfig, data_root: Path) -> list[dict[str, object]]:
    """The train/val sets as MLflow dataset records: images, distinct tags, tag labels."""
    from orchestrator.tasks.datasets import TRAINING, VALIDATION, dataset_record
    from orchestrator.tasks.ram.synthetic import folder_data
    from orchestrator.tasks.ram.tags_file import read_tags

    data = config.data
    folder = folder_data(Path(data_root), data) if isinstance(data, RamSyntheticData) else data
    records = []
    for split, context, images, tags_file in (
        ("train", TRAINING, folder.train_images, folder.train_tags),
        ("val", VALIDATION, folder.val_images, folder.val_tags),
    ):
        tags = read_tags(tags_file)
        profile = {
            "num_images": len(tags),
            "num_tags": len({t for image_tags in tags.values() for t in image_tags}),
            "num_labels": sum(len(t) for t in tags.values()),
        }
        records.append(
            dataset_record(
                f"{data.kind}-{split}",
                context,
                tags_file,
                profile,
                files=[tags_file],
                folders=[images],
            )
        )
    return records


#: what a trial of this task reports (the task class reads the same names)
VAL_METRICS: tuple[str, ...] = ("val/map", "val/f1", "val/precision", "val/recall")
COMPONENTS: tuple[str, ...] = ("tag", "distill", "coarse")

register_task(
    "ram",
    TaskSpec(
        config=RamTaskConfig,
        loss=RamLossConfig,
        impl="orchestrator.tasks.ram.task:RamTask",
        prepare=prepare_data,
        describe=describe_data,
        val_metrics=VAL_METRICS,
        components=COMPONENTS,
    ),
)

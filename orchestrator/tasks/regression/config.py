"""Config of the ``regression`` task (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.config.base import StrictModel
from orchestrator.config.task import LossConfig, TaskConfig, TaskSpec, register_task


class FaultConfig(StrictModel):
    """Make every trial fail on purpose, to see how a sweep handles it (tests, demos).

    ``deterministic`` raises ``ValueError`` on every attempt, as a bug in a loss would;
    ``infrastructure`` raises ``MemoryError`` until ``log`` holds ``times`` lines, as a
    flaky node would; ``nan`` makes the loss NaN on DDP rank ``rank`` only, from its
    ``at_step``-th micro-batch on (the other ranks never see it). Each fault appends a line
    to ``log``, so attempts can be counted.
    """

    kind: Literal["deterministic", "infrastructure", "nan"]
    log: str = Field(min_length=1)
    times: int = Field(1, ge=1)
    rank: int = Field(0, ge=0)
    at_step: int = Field(1, ge=1)


class RegressionTaskConfig(TaskConfig):
    """y = x·w + noise with a fixed random ``w``; an MLP learns it."""

    kind: Literal["regression"] = "regression"
    num_train: int = Field(256, ge=1)
    num_val: int = Field(64, ge=1)
    features: int = Field(8, ge=1)
    hidden: int = Field(16, ge=1)
    noise: float = Field(0.1, ge=0)
    data_seed: int = 0
    fault: FaultConfig | None = None


class RegressionWeights(StrictModel):
    mse: float = Field(1.0, ge=0)
    l1: float = Field(0.0, ge=0)


class RegressionLossConfig(LossConfig):
    """Weighted sum of a squared and an absolute error term, averaged (``mean``) or summed
    (``sum``) over the micro-batch's samples."""

    weight: RegressionWeights = Field(default_factory=RegressionWeights)
    reduction: Literal["mean", "sum"] = "mean"


def prepare_data(config: RegressionTaskConfig, data_root: Path) -> None:
    """Nothing to prepare: the data is generated in memory from ``data_seed``."""


def describe_data(config: RegressionTaskConfig, data_root: Path) -> list[dict[str, object]]:
    """The generated train/val sets as MLflow dataset records (digest: what generates them)."""
    from orchestrator.tasks.datasets import TRAINING, VALIDATION, dataset_record

    recipe = {
        "data_seed": config.data_seed,
        "features": config.features,
        "noise": config.noise,
    }
    return [
        dataset_record(
            f"regression-{split}",
            context,
            f"generated:regression?seed={config.data_seed}",
            {"num_samples": count, "features": config.features},
            extra={**recipe, "split": split, "count": count},
        )
        for split, context, count in (
            ("train", TRAINING, config.num_train),
            ("val", VALIDATION, config.num_val),
        )
    ]


#: what a trial of this task reports (the task class reads the same names)
VAL_METRICS: tuple[str, ...] = ("val/mse",)
COMPONENTS: tuple[str, ...] = ("mse", "l1")

register_task(
    "regression",
    TaskSpec(
        config=RegressionTaskConfig,
        loss=RegressionLossConfig,
        impl="orchestrator.tasks.regression.task:RegressionTask",
        prepare=prepare_data,
        describe=describe_data,
        val_metrics=VAL_METRICS,
        components=COMPONENTS,
    ),
)

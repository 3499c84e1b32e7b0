"""Config of the ``line`` task: torch-free, like every task config (``validate`` is fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.tasks import LossConfig, TaskConfig, TaskSpec


class LineTaskConfig(TaskConfig):
    """Fit ``y = slope * x + 1`` from ``num_train`` noisy points."""

    kind: Literal["line"] = "line"
    slope: float = 2.0
    num_train: int = Field(64, ge=2)
    num_val: int = Field(16, ge=1)


class LineWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mse: float = Field(1.0, ge=0)


class LineLossConfig(LossConfig):
    weight: LineWeights = Field(default_factory=LineWeights)


def prepare_data(config: LineTaskConfig, data_root: Path) -> None:
    """Nothing to prepare: the points are generated in each trial."""


#: what the entry point ``line = "orch_plugin_line.config:TASK"`` gives orchestrator
TASK = TaskSpec(
    config=LineTaskConfig,
    loss=LineLossConfig,
    impl="orch_plugin_line.task:LineTask",  # torch: imported only inside a trial
    prepare=prepare_data,
    val_metrics=("val/mse",),
    components=("mse",),
)

"""Config of the ``line`` task: torch-free, like every task config (``validate`` is fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.tasks.base import LossConfig, StrictModel, TaskConfig


class LineTaskConfig(TaskConfig):
    """Fit ``y = slope * x + 1`` from ``num_train`` noisy points."""

    kind: Literal["line"] = "line"
    slope: float = 2.0
    num_train: int = Field(64, ge=2)
    num_val: int = Field(16, ge=1)


class LineWeights(StrictModel):
    mse: float = Field(1.0, ge=0)


class LineLossConfig(LossConfig):
    weight: LineWeights = Field(default_factory=LineWeights)


def prepare_data(config: LineTaskConfig, data_root: Path) -> None:
    """Nothing to prepare: the points are generated in each trial."""

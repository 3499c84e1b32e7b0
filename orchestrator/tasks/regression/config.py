"""Config of the ``regression`` task (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.tasks.base import LossConfig, StrictModel, TaskConfig


class RegressionTaskConfig(TaskConfig):
    """y = x·w + noise with a fixed random ``w``; an MLP learns it."""

    kind: Literal["regression"] = "regression"
    num_train: int = Field(256, ge=1)
    num_val: int = Field(64, ge=1)
    features: int = Field(8, ge=1)
    hidden: int = Field(16, ge=1)
    noise: float = Field(0.1, ge=0)
    data_seed: int = 0


class RegressionWeights(StrictModel):
    mse: float = Field(1.0, ge=0)
    l1: float = Field(0.0, ge=0)


class RegressionLossConfig(LossConfig):
    """Weighted sum of a mean-squared and a mean-absolute error term."""

    weight: RegressionWeights = Field(default_factory=RegressionWeights)


def prepare_data(config: RegressionTaskConfig, data_root: Path) -> None:
    """Nothing to prepare: the data is generated in memory from ``data_seed``."""

"""Everything a training process needs to run one trial, as plain picklable data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config.models import BatchConfig, OptimConfig, SweepConfig, TrainConfig
from orchestrator.search_space.batch import BatchPlan, plan_batch
from orchestrator.search_space.space import apply_params
from orchestrator.tasks.base import LossConfig


@dataclass(frozen=True)
class TrialSpec:
    """The sweep (as validated data), the trial's parameters and where data lives."""

    sweep: dict[str, Any]
    params: dict[str, Any]
    data_root: str

    def config(self) -> SweepConfig:
        from orchestrator.config.loader import _typed_model

        return _typed_model(self.sweep["task"]["kind"]).model_validate(self.sweep)


@dataclass(frozen=True)
class ResolvedTrial:
    """A trial's hyperparameters after the sampled values replaced the file's defaults."""

    config: SweepConfig
    loss: LossConfig
    optim: OptimConfig
    batch: BatchConfig
    train: TrainConfig
    plan: BatchPlan
    data_root: Path


def resolve(spec: TrialSpec) -> ResolvedTrial:
    """Apply ``spec.params`` to the sweep's hyperparameter sections and validate them."""
    config = spec.config()
    hyper = apply_params(config.hyperparameters(), spec.params)
    batch = BatchConfig.model_validate(hyper["batch"])
    return ResolvedTrial(
        config=config,
        loss=type(config.loss).model_validate(hyper["loss"]),
        optim=OptimConfig.model_validate(hyper["optim"]),
        batch=batch,
        train=TrainConfig.model_validate(hyper["train"]),
        plan=plan_batch(batch.effective, batch.micro, config.resources.workers),
        data_root=Path(spec.data_root),
    )

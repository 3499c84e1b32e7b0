"""Everything a training process needs to run one trial, as plain picklable data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config.batch import (
    AUTO,
    BatchPlan,
    micro_candidates,
    plan_batch,
    scaled_lr,
)
from orchestrator.config.models import (
    BackendConfig,
    BatchConfig,
    OptimConfig,
    SweepConfig,
    TrainConfig,
)
from orchestrator.search_space.space import apply_params
from orchestrator.tasks.base import LossConfig


@dataclass(frozen=True)
class TrialSpec:
    """The sweep (as validated data), the trial's parameters and where data lives."""

    sweep: dict[str, Any]
    params: dict[str, Any]
    data_root: str
    #: where rank 0 writes the final weights (``model.pt``) and batch plan; None = nowhere
    output_dir: str | None = None
    #: the sweep's memory verdicts (see :mod:`orchestrator.training.memory_cache`)
    memory_cache: str | None = None
    #: Tune's trial id and name, and the trial's folder ("" when not run by Tune)
    trial_id: str = ""
    trial_name: str = ""
    trial_dir: str = ""

    def config(self) -> SweepConfig:
        """The sweep, validated again in the trial's process.

        The sampler and the scheduler run in the driver only, where they were validated; a
        plugin kind registered there (docs/extending.md) is unknown in a trial's process, so
        those two sections are left at their defaults here.
        """
        from orchestrator.config.loader import typed_model

        data = dict(self.sweep)
        data["sweep"] = {k: v for k, v in data.get("sweep", {}).items() if k != "sampler"}
        stopping = {k: v for k, v in data.get("stopping", {}).items() if k != "scheduler"}
        data["stopping"] = stopping
        return typed_model(self.sweep["task"]["kind"]).model_validate(data)


@dataclass(frozen=True)
class ResolvedTrial:
    """A trial's hyperparameters after the sampled values replaced the file's defaults."""

    config: SweepConfig
    loss: LossConfig
    optim: OptimConfig
    batch: BatchConfig
    train: TrainConfig
    backend: BackendConfig
    #: the batch split; with ``micro: auto`` a provisional one (the largest micro-batch) that
    #: the trial's memory probe replaces
    plan: BatchPlan
    #: ``optim.lr`` after ``batch.lr_scaling`` for this trial's effective batch
    lr: float
    data_root: Path


def resolve(spec: TrialSpec) -> ResolvedTrial:
    """Apply ``spec.params`` to the sweep's hyperparameter sections and validate them."""
    config = spec.config()
    hyper = apply_params(config.hyperparameters(), spec.params)
    batch = BatchConfig.model_validate(hyper["batch"])
    optim = OptimConfig.model_validate(hyper["optim"])
    workers = config.resources.workers
    micro = micro_candidates(batch.effective, workers)[0] if batch.micro == AUTO else batch.micro
    assert isinstance(micro, int)
    reference = batch.reference or config.batch.effective
    return ResolvedTrial(
        config=config,
        loss=type(config.loss).model_validate(hyper["loss"]),
        optim=optim,
        batch=batch,
        train=TrainConfig.model_validate(hyper["train"]),
        backend=BackendConfig.model_validate(hyper["backend"]),
        plan=plan_batch(batch.effective, micro, workers),
        lr=scaled_lr(optim.lr, batch.effective, reference, batch.lr_scaling),
        data_root=Path(spec.data_root),
    )

"""What a trial trains with, built once before its first epoch: Accelerate, the task and its
data, the model, optimizer, LR schedule and (after calibration) the EMA."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from orchestrator.config.batch import BatchPlan
from orchestrator.tasks import get_task
from orchestrator.training.spec import ResolvedTrial


@dataclass
class TrialParts:
    """The trial's resolved settings and the objects its epochs train."""

    trial: ResolvedTrial
    accelerator: Any
    task: Any
    #: the task's loss terms, in report order
    components: tuple[str, ...]
    train_set: Any
    val_set: Any
    #: prepared by Accelerate (DDP-wrapped with several workers)
    model: torch.nn.Module
    optimizer: Any
    #: stepped by hand once per optimizer step (see :func:`build_parts`)
    schedule: Any
    #: the weights' moving average (``train.ema``), made by :meth:`start_ema`
    ema: Any = None

    @property
    def deepspeed(self) -> bool:
        return bool(self.trial.backend.kind == "deepspeed")

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def start_ema(self) -> None:
        """Start the moving average from the current weights (after calibration)."""
        self.ema = _ema(self.unwrapped(), self.trial)

    def evaluated_model(self) -> torch.nn.Module:
        """What the trial evaluates and saves: the EMA when on, else the model itself."""
        if self.ema is not None:
            return self.ema.module
        return self.unwrapped()

    def unwrapped(self) -> torch.nn.Module:
        """The trained module without its DDP / DeepSpeed / ``torch.compile`` wrapper.

        Accelerate's ``unwrap_model`` imports DeepSpeed (and through it MLflow) whenever it
        is installed, about 6 s in a fresh trial process (docs/performance.md): only a
        DeepSpeed trial needs that."""
        if self.deepspeed:
            return self.accelerator.unwrap_model(self.model)
        model = self.model
        model = getattr(model, "_orig_mod", model)  # torch.compile
        while isinstance(model, torch.nn.parallel.DistributedDataParallel | torch.nn.DataParallel):
            model = model.module
        return model

    def weights_state(self) -> dict[str, Any]:
        """The state dict :class:`~orchestrator.training.weights.TrialWeights` saves; a
        collective under ZeRO-3 (parameters are partitioned), so every rank calls it."""
        if self.ema is not None:
            return self.ema.module.state_dict()
        if self.deepspeed:
            return self.accelerator.get_state_dict(self.model)
        return self.unwrapped().state_dict()


def build_parts(trial: ResolvedTrial) -> TrialParts:
    """Seed, build and prepare everything of ``trial`` (on every rank, in the same order)."""
    from accelerate.utils import set_seed

    plan = trial.plan
    accelerator = _accelerator(trial, plan)
    if accelerator.num_processes != plan.workers:
        raise RuntimeError(
            f"expected {plan.workers} training processes, Accelerate sees "
            f"{accelerator.num_processes}"
        )
    set_seed(trial.train.seed)
    entry = get_task(trial.config.task.kind)
    task = entry.task_class()(
        trial.config.task, trial.loss, seed=trial.train.seed, data_root=trial.data_root
    )
    train_set, val_set = task.datasets()
    model = task.build_model()
    optimizer = _optimizer(model, trial)
    warmup = trial.optim.warmup_steps
    by_epoch = trial.optim.schedule
    steps_per_epoch = max(1, len(train_set) // plan.effective)  # map-style datasets are sized
    epochs = trial.train.epochs

    def lr_factor(s: int) -> float:
        ramp = min(1.0, (s + 1) / warmup) if warmup else 1.0
        return ramp * by_epoch.factor(s / steps_per_epoch, epochs)

    # The LR schedule is stepped by hand once per optimizer step: Accelerate's prepared
    # scheduler steps once per process, which would shorten warm-up under DDP.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    model, optimizer = accelerator.prepare(model, optimizer)
    return TrialParts(
        trial=trial,
        accelerator=accelerator,
        task=task,
        components=entry.components,
        train_set=train_set,
        val_set=val_set,
        model=model,
        optimizer=optimizer,
        schedule=schedule,
    )


def _accelerator(trial: ResolvedTrial, plan: BatchPlan) -> Any:
    """Accelerate for ``backend.kind``: plain DDP, or DeepSpeed ZeRO via its plugin."""
    from accelerate import Accelerator

    backend = trial.backend
    if plan.workers == 1:
        _forget_previous_trial()
    kwargs: dict[str, Any] = {
        "gradient_accumulation_steps": plan.accum,
        "mixed_precision": backend.mixed_precision,
        "cpu": not torch.cuda.is_available(),
    }
    if backend.kind == "deepspeed":
        from accelerate.utils import DeepSpeedPlugin

        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(hf_ds_config=deepspeed_config(trial, plan))
    return Accelerator(**kwargs)


def _forget_previous_trial() -> None:
    """Accelerate keeps process-wide singletons (mixed precision, accumulation steps, the
    device); a Tune actor reused for the next trial (``sweep.reuse_processes``) still holds
    the last trial's, and Accelerate refuses to change them."""
    from accelerate.state import AcceleratorState, GradientState

    if AcceleratorState._shared_state:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def deepspeed_config(trial: ResolvedTrial, plan: BatchPlan) -> dict[str, Any]:
    """The DeepSpeed config of a trial: ``backend.deepspeed_config`` (if any) with the ZeRO
    stage and offload from ``backend``, and batch, accumulation and clipping from the sweep,
    so DeepSpeed and the sweep's batch arithmetic cannot disagree."""
    backend = trial.backend
    ds: dict[str, Any] = {}
    if backend.deepspeed_config:
        ds = json.loads(Path(backend.deepspeed_config).read_text())
    zero = ds.setdefault("zero_optimization", {})
    zero.setdefault("stage", backend.zero_stage)
    if backend.offload_optimizer != "none":
        zero["offload_optimizer"] = {"device": backend.offload_optimizer}
    if backend.offload_params != "none":
        zero["offload_param"] = {"device": backend.offload_params}
    ds["train_micro_batch_size_per_gpu"] = plan.micro
    ds["gradient_accumulation_steps"] = plan.accum
    ds["train_batch_size"] = plan.effective
    if trial.train.grad_clip is not None:
        ds["gradient_clipping"] = trial.train.grad_clip
    return ds


def _ema(model: torch.nn.Module, trial: ResolvedTrial) -> Any:
    if trial.train.ema is None:
        return None
    from torch.optim.swa_utils import AveragedModel

    decay, warmup = trial.train.ema.decay, trial.train.ema.warmup

    def average(avg: torch.Tensor, new: torch.Tensor, updates: torch.Tensor | int) -> torch.Tensor:
        # ``updates`` counts earlier averages: 0 at the first step (which copies the weights)
        d = decay * (1 - math.exp(-float(updates) / warmup)) if warmup else decay
        return d * avg + (1 - d) * new

    return AveragedModel(model, avg_fn=average, use_buffers=True)


def _optimizer(model: torch.nn.Module, trial: ResolvedTrial) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    o = trial.optim
    if o.name == "sgd":
        return torch.optim.SGD(
            params, lr=trial.lr, momentum=o.momentum, weight_decay=o.weight_decay
        )
    return torch.optim.AdamW(params, lr=trial.lr, weight_decay=o.weight_decay)

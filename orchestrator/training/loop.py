"""The trial loop: Accelerate + gradient accumulation + per-epoch evaluation and reports.

The same function runs in a plain Tune trial (one worker) and in every Ray Train worker
(DDP over Ray's gloo/NCCL process group, which Accelerate picks up from the environment).
Only rank 0 evaluates; every rank reports, because Ray Train's report is collective.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from orchestrator.divergence import StopReason, build_rules
from orchestrator.reserved import STOP_DETAIL, STOP_REASON, STOP_STEP
from orchestrator.tasks import get_task
from orchestrator.training.sampler import MicroBatchSampler
from orchestrator.training.spec import ResolvedTrial, TrialSpec, resolve

Report = Callable[[dict[str, Any]], None]


def run_trial(spec: TrialSpec, report: Report) -> None:
    """Train one trial, calling ``report(metrics)`` once per epoch (and once on a stop)."""
    from accelerate import Accelerator
    from accelerate.utils import send_to_device, set_seed

    trial = resolve(spec)
    accelerator = Accelerator(
        gradient_accumulation_steps=trial.plan.accum,
        mixed_precision=trial.config.backend.mixed_precision,
        cpu=not torch.cuda.is_available(),
    )
    if accelerator.num_processes != trial.plan.workers:
        raise RuntimeError(
            f"expected {trial.plan.workers} training processes, Accelerate sees "
            f"{accelerator.num_processes}"
        )
    set_seed(trial.train.seed)
    spec_entry = get_task(trial.config.task.kind)
    task = spec_entry.task_class()(
        trial.config.task, trial.loss, seed=trial.train.seed, data_root=trial.data_root
    )
    train_set, val_set = task.datasets()
    sampler = MicroBatchSampler(
        len(train_set),  # type: ignore[arg-type]  # map-style datasets are sized
        trial.plan,
        accelerator.process_index,
        trial.train.seed,
    )
    train_loader = DataLoader(
        train_set,
        batch_sampler=sampler,
        collate_fn=task.collate,
        num_workers=getattr(trial.config.task, "num_workers", 0),
    )
    val_loader = DataLoader(
        val_set, batch_size=max(trial.plan.micro, 8), shuffle=False, collate_fn=task.collate
    )
    model = task.build_model()
    optimizer = _optimizer(model, trial)
    warmup = trial.optim.warmup_steps
    # The LR schedule is stepped by hand once per optimizer step: Accelerate's prepared
    # scheduler steps once per process, which would shorten warm-up under DDP.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    clip = trial.train.grad_clip if trial.train.grad_clip is not None else math.inf
    components = spec_entry.components
    primary = trial.config.primary
    rules = build_rules(trial.config.stopping.divergence, (primary.metric, primary.mode))
    history: list[dict[str, Any]] = []
    step = 0

    for epoch in range(trial.train.epochs):
        sampler.set_epoch(epoch)
        model.train()
        sums = torch.zeros(2 + 2 * len(components), dtype=torch.float64)
        grad_norms: list[float] = []
        skipped = 0  # optimizer steps fp16 loss scaling skipped on overflowing gradients
        epoch_steps = 0
        started = time.perf_counter()
        samples = 0
        # [micro-batches with a non-finite loss, optimizer steps with non-finite gradients]
        bad = torch.zeros(2)
        for batch in train_loader:
            batch = send_to_device(batch, accelerator.device)
            with accelerator.accumulate(model):
                out = task.loss(model, batch)
                if not torch.isfinite(out.total.detach()):
                    bad[0] += 1
                accelerator.backward(out.total)
                norm = math.nan
                if accelerator.sync_gradients:
                    raw_norm = accelerator.clip_grad_norm_(model.parameters(), clip)
                    norm = float(raw_norm) if raw_norm is not None else math.nan
                optimizer.step()
                if accelerator.sync_gradients:
                    if math.isfinite(norm):
                        grad_norms.append(norm)
                    elif accelerator.optimizer_step_was_skipped:
                        # AMP: the scaler skipped this step and lowers its scale; counted, and
                        # only a persistent overflow is divergence (rule ``amp_overflow``)
                        skipped += 1
                    elif raw_norm is not None:
                        bad[1] += 1  # no scaler to catch it: the weights are now corrupt
                optimizer.zero_grad()
            samples += trial.plan.micro
            sums += _pack(out, components)
            if accelerator.sync_gradients:
                step += 1
                epoch_steps += 1
                schedule.step()
                # every rank must agree before anyone stops, or DDP waits forever
                agreed = accelerator.reduce(bad.to(accelerator.device), "sum").cpu()
                if agreed.sum().item() > 0:
                    report(_stop_metrics(sums, components, step, epoch, trial, agreed))
                    return
        elapsed = time.perf_counter() - started
        totals = accelerator.reduce(sums.to(accelerator.device), "sum").cpu()
        metrics = _epoch_metrics(totals, components)
        if grad_norms:
            metrics["train/grad_norm"] = sum(grad_norms) / len(grad_norms)
        metrics["train/skipped_frac"] = skipped / max(epoch_steps, 1)
        metrics["train/lr"] = optimizer.param_groups[0]["lr"]
        metrics["train/samples_per_s"] = samples * accelerator.num_processes / max(elapsed, 1e-9)
        if accelerator.is_main_process:
            metrics.update(task.evaluate(accelerator.unwrap_model(model), val_loader))
        metrics.update(
            {
                "orch.step": step,
                "orch.epoch": epoch + 1,
                "orch.samples_seen": step * trial.plan.effective,
            }
        )
        history.append(metrics)
        # only rank 0 has the evaluation, so it decides; the others follow its verdict
        reason = rules.check(history) if accelerator.is_main_process else None
        if _all_agree(accelerator, reason is not None):
            reason = reason or StopReason("diverged", "stopped with rank 0", len(history) - 1)
            metrics.update({STOP_REASON: reason.code, STOP_DETAIL: reason.detail, STOP_STEP: step})
            report(metrics)
            return
        report(metrics)
        accelerator.wait_for_everyone()


def _all_agree(accelerator: Any, flag: bool) -> bool:
    """Whether any rank raised ``flag``, the same answer on every rank (an all-reduce)."""
    vote = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(vote, "sum").item() > 0)


def _optimizer(model: torch.nn.Module, trial: ResolvedTrial) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    o = trial.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def _pack(out: Any, components: tuple[str, ...]) -> torch.Tensor:
    """[count, total, weighted..., raw...] of one micro-batch, for cheap all-reduce."""
    values = [1.0, float(out.total.detach())]
    values += [float(out.weighted[c]) for c in components]
    values += [float(out.raw[c]) for c in components]
    return torch.tensor(values, dtype=torch.float64)


def _epoch_metrics(totals: torch.Tensor, components: tuple[str, ...]) -> dict[str, Any]:
    n = max(float(totals[0]), 1.0)
    metrics: dict[str, Any] = {"train/loss": float(totals[1]) / n}
    k = len(components)
    for i, c in enumerate(components):
        metrics[f"train/loss_{c}"] = float(totals[2 + i]) / n
        metrics[f"train/raw_{c}"] = float(totals[2 + k + i]) / n
    return metrics


def _stop_metrics(
    sums: torch.Tensor,
    components: tuple[str, ...],
    step: int,
    epoch: int,
    trial: ResolvedTrial,
    bad: torch.Tensor,
) -> dict[str, Any]:
    """The report of a trial stopped mid-epoch on a NaN/Inf loss or gradient."""
    metrics = _epoch_metrics(sums, components)
    what = "training loss" if bad[0] > 0 else "gradient norm"
    if bad[0] > 0:
        metrics["train/loss"] = float("nan")
    else:
        metrics["train/grad_norm"] = float("nan")
    metrics.update(
        {
            "orch.step": step,
            "orch.epoch": epoch + 1,
            "orch.samples_seen": step * trial.plan.effective,
            STOP_REASON: "nonfinite",
            STOP_DETAIL: f"{what} became NaN/Inf at optimizer step {step} (epoch {epoch + 1})",
            STOP_STEP: step,
        }
    )
    return metrics

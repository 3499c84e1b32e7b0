"""The trial loop: Accelerate + gradient accumulation + per-epoch evaluation and reports.

The same function runs in a plain Tune trial (one worker) and in every Ray Train worker
(DDP over Ray's gloo/NCCL process group, which Accelerate picks up from the environment).
Only rank 0 evaluates; every rank reports, because Ray Train's report is collective.

A trial is a sequence of phases: build its parts (:mod:`.parts`), choose its micro-batch
(:mod:`.batch_fit`), calibrate the loss weights, then per epoch train (:mod:`.epoch`),
assemble the report, run the divergence rules and publish weights and report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from orchestrator.divergence import StopReason
from orchestrator.divergence.epoch_check import EpochCheck, stop_keys
from orchestrator.reserved import (
    ACCUM,
    EPOCH,
    LR_SCALED,
    MICRO_BATCH,
    OOM_BACKOFFS,
    SAMPLES_SEEN,
    STEP,
    STOP_DETAIL,
    STOP_REASON,
    STOP_STEP,
)
from orchestrator.training.batch_fit import BatchFit
from orchestrator.training.collective import all_agree
from orchestrator.training.epoch import EpochEnd, train_epoch
from orchestrator.training.memory import peak_mem_mb
from orchestrator.training.parts import TrialParts, build_parts
from orchestrator.training.spec import TrialSpec, resolve
from orchestrator.training.weighting import LossWeighting
from orchestrator.training.weights import TrialWeights

Report = Callable[[dict[str, Any]], None]


def run_trial(spec: TrialSpec, report: Report) -> None:
    """Train one trial, calling ``report(metrics)`` once per epoch (and once on a stop)."""
    trial = resolve(spec)
    parts = build_parts(trial)
    fit = BatchFit(trial, spec.memory_cache, main=parts.is_main)
    why = fit.start(parts)
    if why is not None:
        report(oom_stop(parts, fit, 0, 0, why))
        return
    val_loader = DataLoader(
        parts.val_set,
        batch_size=max(fit.plan.micro, 8),
        shuffle=False,
        collate_fn=parts.task.collate,
    )
    # loss.weighting (docs/loss-weighting.md): target_share probes the terms' magnitudes here
    weighting = LossWeighting(trial.loss, parts.components)
    weighting.calibrate(
        parts.task,
        parts.model,
        parts.train_set,
        fit.plan.micro,
        parts.accelerator,
        trial.train.seed,
    )
    parts.start_ema()
    primary = trial.config.primary
    check = EpochCheck(trial.config.stopping.divergence, (primary.metric, primary.mode))
    publish = Publisher(parts, fit, val_loader, spec.output_dir, report)
    step = 0
    for epoch in range(trial.train.epochs):
        end = train_epoch(parts, fit, weighting, epoch, step)
        step = end.step
        if end.out_of_memory is not None:
            report(oom_stop(parts, fit, step, epoch, end.out_of_memory))
            return
        if end.nonfinite is not None:
            publish(nonfinite_stop(parts, fit, end, epoch), final=True)
            return
        metrics = epoch_report(parts, fit, weighting, end, val_loader, epoch)
        if judge(parts, check, metrics, step):
            publish(metrics, final=True)
            return
        publish(metrics, final=epoch == trial.train.epochs - 1)
        parts.accelerator.wait_for_everyone()


class Publisher:
    """Weights first, then the report: Ray may end the trial inside any report."""

    def __init__(
        self,
        parts: TrialParts,
        fit: BatchFit,
        val_loader: Any,
        output_dir: str | None,
        report: Report,
    ) -> None:
        self.parts = parts
        self.fit = fit
        self.report = report
        self.weights = (
            TrialWeights(Path(output_dir), parts.task, val_loader) if output_dir else None
        )

    def __call__(self, metrics: dict[str, Any], *, final: bool) -> None:
        if self.weights is not None:
            state = self.parts.weights_state()
            if self.parts.is_main:
                self.weights.save(state, self.fit.plan, self.fit.backoffs, final=final)
        self.report(metrics)


def bookkeeping(parts: TrialParts, fit: BatchFit, step: int, epoch: int) -> dict[str, Any]:
    """The ``orch.*`` progress keys of a report at ``step`` in epoch ``epoch`` (0-based)."""
    return {
        STEP: step,
        EPOCH: epoch + 1,
        SAMPLES_SEEN: step * fit.plan.effective,
        MICRO_BATCH: fit.plan.micro,
        ACCUM: fit.plan.accum,
        OOM_BACKOFFS: len(fit.backoffs),
        LR_SCALED: parts.trial.lr,
    }


def epoch_report(
    parts: TrialParts,
    fit: BatchFit,
    weighting: LossWeighting,
    end: EpochEnd,
    val_loader: Any,
    epoch: int,
) -> dict[str, Any]:
    """The report of a whole epoch: training means over all ranks, rank 0's evaluation."""
    accelerator, totals = parts.accelerator, end.totals
    summed = accelerator.reduce(totals.sums.to(accelerator.device), "sum").cpu()
    metrics = epoch_metrics(summed, parts.components)
    metrics.update(weighting.epoch_metrics())
    if totals.grad_norms:
        metrics["train/grad_norm"] = sum(totals.grad_norms) / len(totals.grad_norms)
    metrics["train/skipped_frac"] = totals.skipped / max(totals.steps, 1)
    metrics["train/lr"] = parts.optimizer.param_groups[0]["lr"]
    samples = totals.samples * accelerator.num_processes
    metrics["train/samples_per_s"] = samples / max(end.elapsed_s, 1e-9)
    metrics["train/peak_mem_mb"] = peak_mem_mb(accelerator.device)
    if parts.is_main:
        metrics.update(parts.task.evaluate(parts.evaluated_model(), val_loader))
    metrics.update(bookkeeping(parts, fit, end.step, epoch))
    return metrics


def judge(parts: TrialParts, check: EpochCheck, metrics: dict[str, Any], step: int) -> bool:
    """Run the divergence rules on ``metrics``; on a stop, write why into it.

    Only rank 0 has the evaluation, so it decides; the others follow its verdict.
    """
    reason = check.add(metrics, judge=parts.is_main)
    if not all_agree(parts.accelerator, reason is not None):
        return False
    reason = reason or StopReason("diverged", "stopped with rank 0", len(check.history) - 1)
    metrics.update(stop_keys(reason, step))
    return True


def oom_stop(parts: TrialParts, fit: BatchFit, step: int, epoch: int, why: str) -> dict[str, Any]:
    """The report of a trial stopped because no micro-batch fits in memory."""
    return bookkeeping(parts, fit, step, epoch) | {
        STOP_REASON: "oom",
        STOP_DETAIL: f"out of memory at micro-batch {fit.plan.micro}; {why}",
        STOP_STEP: step,
    }


def nonfinite_stop(parts: TrialParts, fit: BatchFit, end: EpochEnd, epoch: int) -> dict[str, Any]:
    """The report of a trial stopped mid-epoch on a NaN/Inf loss or gradient."""
    assert end.nonfinite is not None
    metrics = epoch_metrics(end.totals.sums, parts.components)
    bad_loss = end.nonfinite[0] > 0
    if bad_loss:
        metrics["train/loss"] = float("nan")
    else:
        metrics["train/grad_norm"] = float("nan")
    what = "training loss" if bad_loss else "gradient norm"
    metrics[STOP_REASON] = "nonfinite"
    metrics[STOP_DETAIL] = (
        f"{what} became NaN/Inf at optimizer step {end.step} (epoch {epoch + 1})"
    )
    return metrics | bookkeeping(parts, fit, end.step, epoch) | {STOP_STEP: end.step}


def epoch_metrics(totals: torch.Tensor, components: tuple[str, ...]) -> dict[str, Any]:
    """Mean loss and terms per micro-batch from summed [count, total, weighted..., raw...]."""
    n = max(float(totals[0]), 1.0)
    metrics: dict[str, Any] = {"train/loss": float(totals[1]) / n}
    k = len(components)
    for i, c in enumerate(components):
        metrics[f"train/loss_{c}"] = float(totals[2 + i]) / n
        metrics[f"train/raw_{c}"] = float(totals[2 + k + i]) / n
    return metrics

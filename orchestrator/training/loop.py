"""The trial loop: Accelerate + gradient accumulation + per-epoch evaluation and reports.

The same function runs in a plain Tune trial (one worker) and in every Ray Train worker
(DDP over Ray's gloo/NCCL process group, which Accelerate picks up from the environment).
Only rank 0 evaluates; every rank reports, because Ray Train's report is collective.

A trial is a sequence of phases: build its parts (:mod:`.parts`), choose its micro-batch
(:mod:`.batch_fit`), calibrate the loss weights, then per epoch train (:mod:`.epoch`),
assemble the report, run the divergence rules and publish weights and report.
"""

from __future__ import annotations

import json
import tempfile
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
    PBT_CLONED_FROM,
    PBT_EXPLOIT_EPOCH,
    PBT_EXPLOITS,
    PBT_LINEAGE,
    RESTORED_FROM_EPOCH,
    SAMPLES_SEEN,
    STEP,
    STOP_DETAIL,
    STOP_REASON,
    STOP_STEP,
)
from orchestrator.training import checkpoint
from orchestrator.training.batch_fit import BatchFit
from orchestrator.training.collective import all_agree
from orchestrator.training.epoch import EpochEnd, train_epoch
from orchestrator.training.memory import peak_mem_mb
from orchestrator.training.parts import TrialParts, build_parts
from orchestrator.training.spec import TrialSpec, resolve
from orchestrator.training.weighting import LossWeighting
from orchestrator.training.weights import TrialWeights

#: ``report(metrics)``, or ``report(metrics, checkpoint_folder)``
Report = Callable[..., None]


def run_trial(
    spec: TrialSpec,
    report: Report,
    restored: dict[str, Any] | None = None,
    *,
    checkpoints: bool = False,
) -> None:
    """Train one trial, calling ``report(metrics)`` once per epoch (and once on a stop).

    With ``restored`` (this rank's state from :func:`.checkpoint.load`), the trial continues
    after the checkpoint's epoch instead of starting over. With ``checkpoints`` (the caller's
    ``report`` stores them) and ``train.checkpoint``, every ``every``-th epoch's report
    carries one: ``report(metrics, folder)``.
    """
    trial = resolve(spec)
    parts = build_parts(trial)
    fit = BatchFit(trial, spec.memory_cache, main=parts.is_main)
    weighting = LossWeighting(trial.loss, parts.components)
    primary = trial.config.primary
    check = EpochCheck(trial.config.stopping.divergence, (primary.metric, primary.mode))
    begun = begin(parts, fit, weighting, check, restored)
    if isinstance(begun, str):
        report(oom_stop(parts, fit, 0, 0, begun))
        return
    first, step = begun
    lineage = checkpoint.lineage_after(restored, spec.trial_id)
    if restored is not None:
        report = _restored_from(report, first, lineage)
    val_loader = DataLoader(
        parts.val_set,
        batch_size=max(fit.start_micro, 8),
        shuffle=False,
        collate_fn=parts.task.collate,
    )
    # without MLflow nothing reads an MLflow model: writing it would import MLflow (~2.5 s
    # in a fresh trial process, docs/performance.md)
    mlflow_model = bool(spec.sweep.get("tracking", {}).get("enabled", True))
    publish = Publisher(parts, fit, val_loader, spec.output_dir, report, mlflow_model)
    every = trial.train.checkpoint.every if checkpoints and trial.train.checkpoint else 0
    for epoch in range(first, trial.train.epochs):
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
        last = epoch == trial.train.epochs - 1
        due = bool(every) and not last and (epoch + 1) % every == 0
        state = (
            checkpoint.capture(
                parts, fit, weighting, check, epoch + 1, step,
                trial_id=spec.trial_id, lineage=lineage,
            )
            if due
            else None
        )  # fmt: skip
        publish(metrics, final=last, state=state)
        parts.accelerator.wait_for_everyone()


def begin(
    parts: TrialParts,
    fit: BatchFit,
    weighting: LossWeighting,
    check: EpochCheck,
    restored: dict[str, Any] | None,
) -> tuple[int, int] | str:
    """Ready the trial for its first epoch: ``(epochs, steps)`` already done (0, 0 unless
    ``restored``), or why not even a micro-batch of 1 fits."""
    if restored is not None:
        parts.start_ema()
        checkpoint.apply(restored, parts, fit, weighting, check)
        return restored["epoch"], restored["step"]
    why = fit.start(parts)
    if why is not None:
        return why
    # loss.weighting (docs/loss-weighting.md): target_share probes the terms' sizes here
    trial = parts.trial
    weighting.calibrate(
        parts.task, parts.model, parts.train_set, fit.plan.micro, parts.accelerator,
        trial.train.seed,
    )  # fmt: skip
    parts.start_ema()
    return 0, 0


def _restored_from(report: Report, epoch: int, lineage: list[list[Any]]) -> Report:
    """``report`` with ``orch.restored_from_epoch`` in every report of a restored trial, and
    the line of clones behind it when a population scheduler cloned it (docs/pbt.md)."""
    extra: dict[str, Any] = {RESTORED_FROM_EPOCH: epoch}
    if lineage:
        extra |= {
            PBT_CLONED_FROM: lineage[-1][0],
            PBT_EXPLOIT_EPOCH: lineage[-1][1],
            PBT_EXPLOITS: len(lineage),
            PBT_LINEAGE: json.dumps(lineage),
        }

    def tagged(metrics: dict[str, Any], *args: Any) -> None:
        report({**metrics, **extra}, *args)

    return tagged


class Publisher:
    """Weights first, then the report: Ray may end the trial inside any report."""

    def __init__(
        self,
        parts: TrialParts,
        fit: BatchFit,
        val_loader: Any,
        output_dir: str | None,
        report: Report,
        mlflow_model: bool = True,
    ) -> None:
        self.parts = parts
        self.fit = fit
        self.report = report
        self.weights = (
            TrialWeights(Path(output_dir), parts.task, val_loader, mlflow_model=mlflow_model)
            if output_dir
            else None
        )

    def __call__(
        self, metrics: dict[str, Any], *, final: bool, state: dict[str, Any] | None = None
    ) -> None:
        """Report ``metrics``; with ``state``, with this rank's checkpoint of it."""
        if self.weights is not None:
            weights = self.parts.weights_state()
            if self.parts.is_main:
                self.weights.save(weights, self.fit.plan, self.fit.backoffs, final=final)
        if state is None:
            self.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="orch-checkpoint-") as folder:
            # the report persists the folder into the trial's storage before it returns
            checkpoint.save(state, Path(folder), self.parts.accelerator.process_index)
            if self.weights is not None and self.parts.is_main:
                # the epoch's weights as the final model.pt holds them (the EMA's when on):
                # the driver logs each kept checkpoint's as an MLflow logged model
                checkpoint.add_weights(self.weights.out, Path(folder))
            self.report(metrics, folder)


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

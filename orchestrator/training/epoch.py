"""One training epoch: micro-batch passes, optimizer steps, the NaN/Inf check after every
step, and the redo of a step after an out-of-memory pass.

Batch handling (docs/batch.md): each optimizer step sees exactly ``effective`` samples, split
into ``accum`` passes of ``micro`` samples on each of ``workers`` ranks. A mean-reduced loss
is averaged over the effective batch by Accelerate's ``1/accum`` and DDP's ``1/workers``; a
sum-reduced loss is multiplied back by ``accum x workers`` so it is summed over the effective
batch, whatever the split. An out-of-memory pass halves the micro-batch, doubles the
accumulation and redoes the same step with the same samples.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from orchestrator.config.batch import BatchPlan
from orchestrator.training.batch_fit import BatchFit
from orchestrator.training.collective import all_agree
from orchestrator.training.memory import check_simulated_limit, is_oom
from orchestrator.training.parts import TrialParts
from orchestrator.training.sampler import MicroBatchSampler
from orchestrator.training.weighting import LossWeighting


class _OutOfMemory(Exception):
    """A pass ran out of memory on some rank; every rank raises it together."""


@dataclass
class EpochTotals:
    """What this rank's optimizer steps of one epoch add up to."""

    #: [micro-batches, total loss, weighted terms..., raw terms...], summed (see :func:`pack`)
    sums: torch.Tensor
    grad_norms: list[float] = field(default_factory=list)
    #: optimizer steps fp16 loss scaling skipped on overflowing gradients
    skipped: int = 0
    #: optimizer steps taken in this epoch
    steps: int = 0
    #: samples this rank trained on
    samples: int = 0

    @classmethod
    def empty(cls, components: tuple[str, ...]) -> EpochTotals:
        return cls(torch.zeros(2 + 2 * len(components), dtype=torch.float64))


@dataclass
class EpochEnd:
    """How an epoch ended: whole, or with a reason to stop the trial inside it."""

    totals: EpochTotals
    #: optimizer steps of the trial so far
    step: int
    elapsed_s: float
    #: [micro-batches with a non-finite loss, steps with non-finite gradients], summed over
    #: ranks, when some were found: the trial stops at ``step``
    nonfinite: torch.Tensor | None = None
    #: why no smaller micro-batch can be tried after an out-of-memory pass
    out_of_memory: str | None = None


def train_epoch(
    parts: TrialParts, fit: BatchFit, weighting: LossWeighting, epoch: int, step: int
) -> EpochEnd:
    """Train epoch ``epoch`` (0-based) of a trial that has taken ``step`` optimizer steps."""
    parts.model.train()
    totals = EpochTotals.empty(parts.components)
    started = time.perf_counter()
    while True:  # one pass over the epoch; restarted at the current step after an OOM
        try:
            bad = _epoch_pass(parts, fit.plan, weighting, epoch, totals)
            elapsed = time.perf_counter() - started
            return EpochEnd(totals, step + totals.steps, elapsed, nonfinite=bad)
        except _OutOfMemory as exc:
            why = fit.back_off(parts)
            if why is not None:
                elapsed = time.perf_counter() - started
                return EpochEnd(
                    totals, step + totals.steps, elapsed, out_of_memory=f"{why}: {exc}"
                )


def _epoch_pass(
    parts: TrialParts,
    plan: BatchPlan,
    weighting: LossWeighting,
    epoch: int,
    totals: EpochTotals,
) -> torch.Tensor | None:
    """The rest of the epoch from ``totals.steps``; the agreed non-finite counts if the
    trial must stop, else None. Raises :class:`_OutOfMemory` for the caller to back off."""
    from accelerate.utils import send_to_device

    accelerator, trial = parts.accelerator, parts.trial
    sampler = MicroBatchSampler(
        len(parts.train_set), plan, accelerator.process_index, trial.train.seed
    )
    sampler.set_epoch(epoch, start_step=totals.steps)
    loader = DataLoader(
        parts.train_set,
        batch_sampler=sampler,
        collate_fn=parts.task.collate,
        num_workers=getattr(trial.config.task, "num_workers", 0),
    )
    step_sums = torch.zeros_like(totals.sums)
    # [micro-batches with a non-finite loss, optimizer steps with non-finite gradients]
    bad = torch.zeros(2)
    for batch in loader:
        out, norm = _micro_step(parts, plan, weighting, send_to_device(batch, accelerator.device))
        bad += _count_bad(parts, out, norm, totals)
        step_sums += pack(out, parts.components)
        if accelerator.sync_gradients:
            _end_step(parts, plan, totals, step_sums)
            # every rank must agree before anyone stops, or DDP waits forever
            agreed = accelerator.reduce(bad.to(accelerator.device), "sum").cpu()
            if agreed.sum().item() > 0:
                return agreed
    return None


def _micro_step(
    parts: TrialParts, plan: BatchPlan, weighting: LossWeighting, batch: Any
) -> tuple[Any, tuple[float, Any]]:
    """Forward and backward of one micro-batch, and the optimizer step when it ends one:
    the loss and ``(norm, raw norm)`` of the gradients."""
    with parts.accelerator.accumulate(parts.model):
        out = _forward(parts, plan, weighting, batch)
        _backward(parts, plan, out)
        return out, _optimizer_step(parts)


def _forward(parts: TrialParts, plan: BatchPlan, weighting: LossWeighting, batch: Any) -> Any:
    failed = False
    out = None
    try:
        check_simulated_limit(plan.micro, parts.trial.backend.simulate_oom_above)
        out = weighting.apply(parts.task.loss(parts.model, batch))
    except Exception as exc:
        if parts.deepspeed or not is_oom(exc):
            raise
        failed = True
    if plan.workers > 1:
        # all ranks learn of an OOM before the backward pass, whose gradient all-reduce
        # would leave the others waiting forever
        failed = all_agree(parts.accelerator, failed)
    if failed:
        raise _OutOfMemory(f"a pass over {plan.micro} samples")
    return out


def _backward(parts: TrialParts, plan: BatchPlan, out: Any) -> None:
    scale = float(plan.accum * plan.workers) if out.reduction == "sum" else 1.0
    try:
        parts.accelerator.backward(out.total * scale if scale != 1 else out.total)
    except Exception as exc:
        # one process: nothing else is waiting, so the step can be redone
        if plan.workers == 1 and not parts.deepspeed and is_oom(exc):
            raise _OutOfMemory(f"backward over {plan.micro} samples") from exc
        raise


def _optimizer_step(parts: TrialParts) -> tuple[float, Any]:
    """Clip (when the pass ends a step) and step; ``(norm, raw norm)`` of the gradients."""
    accelerator = parts.accelerator
    clip = parts.trial.train.grad_clip
    norm, raw_norm = math.nan, None
    if accelerator.sync_gradients:
        raw_norm = accelerator.clip_grad_norm_(
            parts.model.parameters(), clip if clip is not None else math.inf
        )
        norm = float(raw_norm) if raw_norm is not None else math.nan
    parts.optimizer.step()
    parts.optimizer.zero_grad()
    return norm, raw_norm


def _count_bad(
    parts: TrialParts, out: Any, norm: tuple[float, Any], totals: EpochTotals
) -> torch.Tensor:
    """This micro-batch's [non-finite loss, non-finite gradients] counts; finite gradient
    norms and skipped AMP steps go into ``totals``."""
    bad = torch.zeros(2)
    if not torch.isfinite(out.total.detach()):
        bad[0] = 1
    if not parts.accelerator.sync_gradients:
        return bad
    value, raw_norm = norm
    if math.isfinite(value):
        totals.grad_norms.append(value)
    elif parts.accelerator.optimizer_step_was_skipped:
        # AMP: the scaler skipped this step and lowers its scale; counted, and only
        # persistent overflow is divergence
        totals.skipped += 1
    elif raw_norm is not None:
        bad[1] = 1  # no scaler to catch it: the weights are corrupt
    return bad


def _end_step(
    parts: TrialParts, plan: BatchPlan, totals: EpochTotals, step_sums: torch.Tensor
) -> None:
    """The bookkeeping of a finished optimizer step: totals, LR schedule, EMA."""
    totals.steps += 1
    totals.samples += plan.effective // plan.workers
    totals.sums += step_sums
    step_sums.zero_()
    parts.schedule.step()
    if parts.ema is not None:
        parts.ema.update_parameters(parts.unwrapped())


def pack(out: Any, components: tuple[str, ...]) -> torch.Tensor:
    """[count, total, weighted..., raw...] of one micro-batch, for cheap all-reduce."""
    values = [1.0, float(out.total.detach())]
    values += [float(out.weighted[c]) for c in components]
    values += [float(out.raw[c]) for c in components]
    return torch.tensor(values, dtype=torch.float64)

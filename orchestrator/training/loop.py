"""The trial loop: Accelerate + gradient accumulation + per-epoch evaluation and reports.

The same function runs in a plain Tune trial (one worker) and in every Ray Train worker
(DDP over Ray's gloo/NCCL process group, which Accelerate picks up from the environment).
Only rank 0 evaluates; every rank reports, because Ray Train's report is collective.

Batch handling (docs/batch.md): each optimizer step sees exactly ``effective`` samples, split
into ``accum`` passes of ``micro`` samples on each of ``workers`` ranks. A mean-reduced loss
is averaged over the effective batch by Accelerate's ``1/accum`` and DDP's ``1/workers``; a
sum-reduced loss is multiplied back by ``accum x workers`` so it is summed over the effective
batch, whatever the split. An out-of-memory pass halves the micro-batch, doubles the
accumulation and redoes the same step with the same samples.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from orchestrator.config.batch import (
    AUTO,
    BatchPlan,
    backoff_micro,
    micro_candidates,
    plan_batch,
)
from orchestrator.divergence import StopReason, build_rules
from orchestrator.reserved import STOP_DETAIL, STOP_REASON, STOP_STEP
from orchestrator.tasks import get_task
from orchestrator.training.memory import (
    check_simulated_limit,
    free_memory,
    is_oom,
    peak_mem_mb,
)
from orchestrator.training.memory_cache import NOTHING_FITS, lookup, memory_key, record
from orchestrator.training.sampler import MicroBatchSampler
from orchestrator.training.spec import ResolvedTrial, TrialSpec, resolve
from orchestrator.training.weighting import LossWeighting
from orchestrator.training.weights import TrialWeights

Report = Callable[[dict[str, Any]], None]


class _OutOfMemory(Exception):
    """A pass ran out of memory on some rank; every rank raises it together."""


def run_trial(spec: TrialSpec, report: Report) -> None:
    """Train one trial, calling ``report(metrics)`` once per epoch (and once on a stop)."""
    from accelerate.utils import send_to_device, set_seed

    trial = resolve(spec)
    plan = trial.plan
    accelerator = _accelerator(trial, plan)
    if accelerator.num_processes != plan.workers:
        raise RuntimeError(
            f"expected {plan.workers} training processes, Accelerate sees "
            f"{accelerator.num_processes}"
        )
    set_seed(trial.train.seed)
    spec_entry = get_task(trial.config.task.kind)
    task = spec_entry.task_class()(
        trial.config.task, trial.loss, seed=trial.train.seed, data_root=trial.data_root
    )
    train_set, val_set = task.datasets()
    num_train = len(train_set)  # map-style datasets are sized
    model = task.build_model()
    optimizer = _optimizer(model, trial)
    warmup = trial.optim.warmup_steps
    # The LR schedule is stepped by hand once per optimizer step: Accelerate's prepared
    # scheduler steps once per process, which would shorten warm-up under DDP.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    limit = trial.backend.simulate_oom_above
    deepspeed = trial.backend.kind == "deepspeed"

    def bookkeeping(step: int, epoch: int) -> dict[str, Any]:
        return {
            "orch.step": step,
            "orch.epoch": epoch + 1,
            "orch.samples_seen": step * plan.effective,
            "orch.micro_batch": plan.micro,
            "orch.accum": plan.accum,
            "orch.oom_backoffs": len(backoffs),
            "orch.lr_scaled": trial.lr,
        }

    backoffs: list[str] = []
    # what earlier trials of this sweep learned about this configuration's memory
    key = memory_key(trial, plan.micro if trial.batch.micro != AUTO else 0)
    known, fitted = lookup(spec.memory_cache, key)
    learn = spec.memory_cache if accelerator.is_main_process else None
    if known and fitted is NOTHING_FITS:
        why = "an earlier trial of this sweep found that not even a micro-batch of 1 fits"
        report(_oom_stop(plan, 0, 0, why, bookkeeping))
        return
    if known and fitted is not None and fitted != plan.micro:
        plan = plan_batch(plan.effective, fitted, plan.workers)
        accelerator.gradient_accumulation_steps = plan.accum
    elif trial.batch.micro == AUTO:
        probed = _probe_micro(accelerator, model, task, train_set, plan, limit)
        record(learn, key, probed)
        if probed is None:
            report(_oom_stop(plan, 0, 0, "even a micro-batch of 1 does not fit", bookkeeping))
            return
        plan = plan_batch(plan.effective, probed, plan.workers)
        accelerator.gradient_accumulation_steps = plan.accum
        optimizer.zero_grad(set_to_none=True)

    val_loader = DataLoader(
        val_set, batch_size=max(plan.micro, 8), shuffle=False, collate_fn=task.collate
    )
    clip = trial.train.grad_clip if trial.train.grad_clip is not None else math.inf
    components = spec_entry.components
    # loss.weighting (docs/loss-weighting.md): target_share probes the terms' magnitudes here
    weighting = LossWeighting(trial.loss, components)
    weighting.calibrate(task, model, train_set, plan.micro, accelerator, trial.train.seed)
    primary = trial.config.primary
    rules = build_rules(trial.config.stopping.divergence, (primary.metric, primary.mode))
    ema = _ema(accelerator.unwrap_model(model), trial)
    history: list[dict[str, Any]] = []
    step = 0
    weights = TrialWeights(Path(spec.output_dir), task, val_loader) if spec.output_dir else None

    def publish(metrics: dict[str, Any], *, final: bool) -> None:
        """Weights first, then the report: Ray may end the trial inside any report."""
        if weights is not None:
            # collective under ZeRO-3 (parameters are partitioned): every rank takes part
            state = (
                ema.module.state_dict() if ema is not None else accelerator.get_state_dict(model)
            )
            if accelerator.is_main_process:
                weights.save(state, plan, backoffs, final=final)
        report(metrics)

    for epoch in range(trial.train.epochs):
        model.train()
        sums = torch.zeros(2 + 2 * len(components), dtype=torch.float64)
        grad_norms: list[float] = []
        skipped = 0  # optimizer steps fp16 loss scaling skipped on overflowing gradients
        epoch_steps = 0
        samples = 0
        started = time.perf_counter()
        while True:  # one pass over the epoch; restarted at the current step after an OOM
            sampler = MicroBatchSampler(
                num_train, plan, accelerator.process_index, trial.train.seed
            )
            sampler.set_epoch(epoch, start_step=epoch_steps)
            loader = DataLoader(
                train_set,
                batch_sampler=sampler,
                collate_fn=task.collate,
                num_workers=getattr(trial.config.task, "num_workers", 0),
            )
            step_sums = torch.zeros_like(sums)
            # [micro-batches with a non-finite loss, optimizer steps with non-finite gradients]
            bad = torch.zeros(2)
            sum_scale = float(plan.accum * plan.workers)
            try:
                for batch in loader:
                    batch = send_to_device(batch, accelerator.device)
                    with accelerator.accumulate(model):
                        failed = False
                        try:
                            check_simulated_limit(plan.micro, limit)
                            out = weighting.apply(task.loss(model, batch))
                        except Exception as exc:
                            if deepspeed or not is_oom(exc):
                                raise
                            failed = True
                        if plan.workers > 1:
                            # all ranks learn of an OOM before the backward pass, whose
                            # gradient all-reduce would leave the others waiting forever
                            failed = _all_agree(accelerator, failed)
                        if failed:
                            raise _OutOfMemory(f"a pass over {plan.micro} samples")
                        if not torch.isfinite(out.total.detach()):
                            bad[0] += 1
                        scale = sum_scale if out.reduction == "sum" else 1.0
                        try:
                            accelerator.backward(out.total * scale if scale != 1 else out.total)
                        except Exception as exc:
                            # one process: nothing else is waiting, so the step can be redone
                            if plan.workers == 1 and not deepspeed and is_oom(exc):
                                raise _OutOfMemory(f"backward over {plan.micro} samples") from exc
                            raise
                        norm, raw_norm = math.nan, None
                        if accelerator.sync_gradients:
                            raw_norm = accelerator.clip_grad_norm_(model.parameters(), clip)
                            norm = float(raw_norm) if raw_norm is not None else math.nan
                        optimizer.step()
                        if accelerator.sync_gradients:
                            if math.isfinite(norm):
                                grad_norms.append(norm)
                            elif accelerator.optimizer_step_was_skipped:
                                # AMP: the scaler skipped this step and lowers its scale;
                                # counted, and only persistent overflow is divergence
                                skipped += 1
                            elif raw_norm is not None:
                                bad[1] += 1  # no scaler to catch it: the weights are corrupt
                        optimizer.zero_grad()
                    step_sums += _pack(out, components)
                    if accelerator.sync_gradients:
                        step += 1
                        epoch_steps += 1
                        samples += plan.effective // plan.workers
                        sums += step_sums
                        step_sums.zero_()
                        schedule.step()
                        if ema is not None:
                            ema.update_parameters(accelerator.unwrap_model(model))
                        # every rank must agree before anyone stops, or DDP waits forever
                        agreed = accelerator.reduce(bad.to(accelerator.device), "sum").cpu()
                        if agreed.sum().item() > 0:
                            publish(
                                _stop_metrics(sums, components, step, epoch, agreed)
                                | bookkeeping(step, epoch)
                                | {STOP_STEP: step},
                                final=True,
                            )
                            return
                break
            except _OutOfMemory as exc:
                smaller = backoff_micro(plan.effective, plan.micro, plan.workers)
                optimizer.zero_grad(set_to_none=True)
                free_memory()
                if smaller is None or deepspeed:
                    why = (
                        "DeepSpeed fixes the micro-batch when its engine is built"
                        if deepspeed
                        else "the micro-batch is already 1"
                    )
                    if not deepspeed:
                        record(learn, key, NOTHING_FITS)
                    report(_oom_stop(plan, step, epoch, f"{why}: {exc}", bookkeeping))
                    return
                backoffs.append(f"{plan.micro}->{smaller}")
                plan = plan_batch(plan.effective, smaller, plan.workers)
                record(learn, key, plan.micro)
                accelerator.gradient_accumulation_steps = plan.accum
                accelerator.step = 0  # restart Accelerate's accumulation count for the redo
        elapsed = time.perf_counter() - started
        totals = accelerator.reduce(sums.to(accelerator.device), "sum").cpu()
        metrics = _epoch_metrics(totals, components)
        metrics.update(weighting.epoch_metrics())
        if grad_norms:
            metrics["train/grad_norm"] = sum(grad_norms) / len(grad_norms)
        metrics["train/skipped_frac"] = skipped / max(epoch_steps, 1)
        metrics["train/lr"] = optimizer.param_groups[0]["lr"]
        metrics["train/samples_per_s"] = samples * accelerator.num_processes / max(elapsed, 1e-9)
        metrics["train/peak_mem_mb"] = peak_mem_mb(accelerator.device)
        if accelerator.is_main_process:
            evaluated = ema.module if ema is not None else accelerator.unwrap_model(model)
            metrics.update(task.evaluate(evaluated, val_loader))
        metrics.update(bookkeeping(step, epoch))
        history.append(metrics)
        # only rank 0 has the evaluation, so it decides; the others follow its verdict
        reason = rules.check(history) if accelerator.is_main_process else None
        if _all_agree(accelerator, reason is not None):
            reason = reason or StopReason("diverged", "stopped with rank 0", len(history) - 1)
            metrics.update({STOP_REASON: reason.code, STOP_DETAIL: reason.detail, STOP_STEP: step})
            publish(metrics, final=True)
            return
        publish(metrics, final=epoch == trial.train.epochs - 1)
        accelerator.wait_for_everyone()


def _accelerator(trial: ResolvedTrial, plan: BatchPlan) -> Any:
    """Accelerate for ``backend.kind``: plain DDP, or DeepSpeed ZeRO via its plugin."""
    from accelerate import Accelerator

    backend = trial.backend
    kwargs: dict[str, Any] = {
        "gradient_accumulation_steps": plan.accum,
        "mixed_precision": backend.mixed_precision,
        "cpu": not torch.cuda.is_available(),
    }
    if backend.kind == "deepspeed":
        from accelerate.utils import DeepSpeedPlugin

        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(hf_ds_config=deepspeed_config(trial, plan))
    return Accelerator(**kwargs)


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


def _probe_micro(
    accelerator: Any,
    model: torch.nn.Module,
    task: Any,
    train_set: Any,
    plan: BatchPlan,
    limit: int | None,
) -> int | None:
    """``batch.micro: auto``: the largest micro-batch whose forward + backward fits.

    Each candidate (divisors of ``effective / workers``, largest first) gets one pass on real
    samples, without gradient sync; ranks agree on the first size that fits everywhere.
    """
    from accelerate.utils import send_to_device

    for micro in micro_candidates(plan.effective, plan.workers):
        failed = False
        try:
            check_simulated_limit(micro, limit)
            batch = send_to_device(
                task.collate([train_set[i] for i in range(micro)]), accelerator.device
            )
            with accelerator.no_sync(model):
                accelerator.backward(task.loss(model, batch).total)
        except Exception as exc:
            if not is_oom(exc):
                raise
            failed = True
        model.zero_grad(set_to_none=True)
        free_memory()
        if not _all_agree(accelerator, failed):
            return micro
    return None


def _oom_stop(
    plan: BatchPlan, step: int, epoch: int, why: str, bookkeeping: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    return bookkeeping(step, epoch) | {
        STOP_REASON: "oom",
        STOP_DETAIL: f"out of memory at micro-batch {plan.micro}; {why}",
        STOP_STEP: step,
    }


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


def _all_agree(accelerator: Any, flag: bool) -> bool:
    """Whether any rank raised ``flag``, the same answer on every rank (an all-reduce)."""
    vote = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(vote, "sum").item() > 0)


def _optimizer(model: torch.nn.Module, trial: ResolvedTrial) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    o = trial.optim
    if o.name == "sgd":
        return torch.optim.SGD(
            params, lr=trial.lr, momentum=o.momentum, weight_decay=o.weight_decay
        )
    return torch.optim.AdamW(params, lr=trial.lr, weight_decay=o.weight_decay)


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
            STOP_REASON: "nonfinite",
            STOP_DETAIL: f"{what} became NaN/Inf at optimizer step {step} (epoch {epoch + 1})",
        }
    )
    return metrics

"""A trial's checkpoint: everything needed to continue it bit-for-bit after a restart.

Written at the end of every ``train.checkpoint.every``-th epoch, beside that epoch's report
(Ray Tune stores it with the trial, ``tune.report(..., checkpoint=)``, and keeps the last
``keep``). It holds the model, optimizer, LR schedule and EMA, every RNG (torch, numpy,
python, per rank), the batch plan after any OOM back-off, the calibrated loss weights and
the divergence rules' history. The sampler needs no state of its own: its order is a pure
function of the seed and the epoch, and a checkpoint is taken between epochs.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator.divergence.epoch_check import EpochCheck
from orchestrator.training.batch_fit import BatchFit
from orchestrator.training.checkpoint_layout import MODEL_DIR
from orchestrator.training.parts import TrialParts
from orchestrator.training.weighting import LossWeighting
from orchestrator.training.weights import PLAN_FILE, WEIGHTS_FILE

#: one file per rank: ``state-<rank>.pt``
STATE_FILE = "state-{rank}.pt"


def capture(
    parts: TrialParts,
    fit: BatchFit,
    weighting: LossWeighting,
    check: EpochCheck,
    epoch: int,
    step: int,
    *,
    trial_id: str = "",
    lineage: list[list[Any]] | None = None,
) -> dict[str, Any]:
    """This rank's state after epoch ``epoch`` (1-based, i.e. the epochs done) at ``step``.

    ``trial_id`` names the trial that wrote it and ``lineage`` the clones its line went
    through (:func:`lineage_after`): a population scheduler hands one trial's checkpoint to
    another (docs/pbt.md)."""
    state: dict[str, Any] = {
        "epoch": epoch,
        "step": step,
        "trial_id": trial_id,
        "lineage": [list(x) for x in lineage or []],
        "model": parts.unwrapped().state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "schedule": parts.schedule.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "plan": [fit.plan.effective, fit.plan.micro, fit.plan.workers],
        "backoffs": list(fit.backoffs),
        "start_micro": fit.start_micro,
        "loss_weights": weighting.weights,
        "history": [dict(r) for r in check.history],
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
    }
    return state


def apply(
    state: dict[str, Any],
    parts: TrialParts,
    fit: BatchFit,
    weighting: LossWeighting,
    check: EpochCheck,
) -> None:
    """Put ``state`` (from :func:`capture`) back into a trial built afresh."""
    _, micro, workers = state["plan"]
    if workers != fit.plan.workers:
        raise RuntimeError(
            f"the checkpoint was written by {workers} workers, this trial has {fit.plan.workers}"
        )
    fit.restore(micro, state["backoffs"], state["start_micro"], parts)
    parts.unwrapped().load_state_dict(state["model"])
    configured = _hyperparameters(parts.optimizer)
    base_lrs = list(parts.schedule.base_lrs)
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.schedule.load_state_dict(state["schedule"])
    _keep_configured(parts, configured, base_lrs)
    if parts.ema is not None and state["ema"] is not None:
        parts.ema.load_state_dict(state["ema"])
    weighting.weights = state["loss_weights"]
    check.history[:] = [dict(r) for r in state["history"]]
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def lineage_after(restored: dict[str, Any] | None, trial_id: str) -> list[list[Any]]:
    """The clones behind a trial restored from ``restored``, oldest first:
    ``[[donor trial id, epoch, cloning trial id], ...]``; restoring another trial's
    checkpoint (a population scheduler's clone) adds that trial, the checkpoint's epoch and
    this trial. A clone inherits its donor's line, so the entries a trial made itself are
    those whose third item is its own id."""
    if restored is None:
        return []
    line = [list(x) for x in restored.get("lineage") or []]
    writer = restored.get("trial_id")
    if writer and trial_id and writer != trial_id:
        line.append([writer, restored["epoch"], trial_id])
    return line


def _hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    """Each param group's settings as this trial configured them (all but the tensors)."""
    return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]


def _keep_configured(
    parts: TrialParts, configured: list[dict[str, Any]], base_lrs: list[float]
) -> None:
    """After loading a checkpoint, the optimizer runs with this trial's settings.

    ``load_state_dict`` also loads the param groups' settings (learning rate, weight decay,
    momentum) and the LR schedule's base rates of the trial that wrote the checkpoint. For
    a restart of the same trial they are its own; for a clone (population-based training)
    they are the donor's, and the clone's new ``optim.lr`` must take effect from the next
    step: its base rate replaces the donor's and the current rate is the schedule's factor
    at the restored step times it. Unchanged values are left alone (bit-for-bit restarts).
    """
    schedule = parts.schedule
    for group, mine, base in zip(parts.optimizer.param_groups, configured, base_lrs, strict=True):
        for key, value in mine.items():
            if key not in ("lr", "initial_lr") and group.get(key) != value:
                group[key] = value
        if group.get("initial_lr") != base:
            group["initial_lr"] = base
    if list(schedule.base_lrs) != base_lrs:
        schedule.base_lrs = list(base_lrs)
        for group, base, factor in zip(
            parts.optimizer.param_groups, base_lrs, schedule.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(schedule.last_epoch)
        schedule._last_lr = [g["lr"] for g in parts.optimizer.param_groups]


def save(state: dict[str, Any], folder: Path, rank: int) -> Path:
    """Write this rank's ``state`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE.format(rank=rank)
    torch.save(state, path)
    return path


def add_weights(weights: Path, folder: Path) -> None:
    """Put the weights folder's files (``model.pt``, ``batch_plan.json``: just written for
    this report) into checkpoint ``folder`` under ``model/``, hard-linked where one
    filesystem allows (the report copies the checkpoint into storage anyway)."""
    out = folder / MODEL_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, PLAN_FILE):
        source = weights / name
        if not source.is_file():
            continue
        try:
            os.link(source, out / name)
        except OSError:
            shutil.copyfile(source, out / name)


def load(folder: Path, rank: int) -> dict[str, Any]:
    """This rank's state from a checkpoint folder."""
    path = folder / STATE_FILE.format(rank=rank)
    if not path.is_file():
        raise RuntimeError(f"checkpoint {folder} has no {path.name}")
    return torch.load(path, weights_only=False)

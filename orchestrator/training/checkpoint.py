"""A trial's checkpoint: everything needed to continue it bit-for-bit after a restart.

Written at the end of every ``train.checkpoint.every``-th epoch, beside that epoch's report
(Ray Tune stores it with the trial, ``tune.report(..., checkpoint=)``, and keeps the last
``keep``). It holds the model, optimizer, LR schedule and EMA, every RNG (torch, numpy,
python, per rank), the batch plan after any OOM back-off, the calibrated loss weights and
the divergence rules' history. The sampler needs no state of its own: its order is a pure
function of the seed and the epoch, and a checkpoint is taken between epochs.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator.divergence.epoch_check import EpochCheck
from orchestrator.training.batch_fit import BatchFit
from orchestrator.training.parts import TrialParts
from orchestrator.training.weighting import LossWeighting

#: one file per rank: ``state-<rank>.pt``
STATE_FILE = "state-{rank}.pt"


def capture(
    parts: TrialParts,
    fit: BatchFit,
    weighting: LossWeighting,
    check: EpochCheck,
    epoch: int,
    step: int,
) -> dict[str, Any]:
    """This rank's state after epoch ``epoch`` (1-based, i.e. the epochs done) at ``step``."""
    state: dict[str, Any] = {
        "epoch": epoch,
        "step": step,
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
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.schedule.load_state_dict(state["schedule"])
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


def save(state: dict[str, Any], folder: Path, rank: int) -> Path:
    """Write this rank's ``state`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE.format(rank=rank)
    torch.save(state, path)
    return path


def load(folder: Path, rank: int) -> dict[str, Any]:
    """This rank's state from a checkpoint folder."""
    path = folder / STATE_FILE.format(rank=rank)
    if not path.is_file():
        raise RuntimeError(f"checkpoint {folder} has no {path.name}")
    return torch.load(path, weights_only=False)

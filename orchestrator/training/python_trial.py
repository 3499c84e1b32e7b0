"""The trial as the user's function sees it: :func:`get_trial`, :func:`report`, and the
loop that calls the function in every training process (one, or each DDP worker).

``report`` gives each call the same treatment as an epoch of the built-in loop: it is one
Tune iteration (schedulers budget in reports), the divergence rules run on the history
(rank 0 decides and every rank learns the verdict, so DDP ranks stop together), and the
driver mirrors it into the trial's MLflow run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.reserved import EPOCH, PREFIX, STEP, STOP_DETAIL, STOP_REASON, STOP_STEP
from orchestrator.search_space.space import apply_params, flatten
from orchestrator.training.spec import TrialSpec

Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Trial:
    """What a training function knows about its trial (:func:`orchestrator.get_trial`)."""

    #: Tune's trial id (the MLflow tag ``orch.trial_id`` of the trial's run)
    id: str
    name: str
    #: the trial's folder under the sweep folder
    dir: str
    #: the sampled values, by dotted key (``optim.lr``)
    params: dict[str, Any]
    #: every hyperparameter of the trial, fixed and sampled, by dotted key
    config: dict[str, Any]
    #: save checkpoints here; it survives a restart of the trial (Tune's retry after an
    #: infrastructure failure, ``orchestrate resume``)
    checkpoint_dir: str
    #: ``checkpoint_dir`` when an earlier attempt of this trial left files in it, else None
    resume_from: str | None
    rank: int = 0
    world_size: int = 1
    #: ``train.epochs``: how many reports make a complete trial
    epochs: int = 1


class TrialStopped(BaseException):
    """Raised by :func:`report` after a report that ends the trial (a divergence rule
    fired), so the user's loop ends at once. A BaseException, like ``SystemExit``, so an
    ``except Exception`` in user code does not swallow it; the trial loop catches it."""


@dataclass
class _Current:
    trial: Trial
    send: Report
    rules: Any
    history: list[dict[str, Any]] = field(default_factory=list)


_current: _Current | None = None


def get_trial() -> Trial:
    """The running trial; raises RuntimeError outside a ``task.kind: python`` trial."""
    return _context().trial


def report(metrics: dict[str, Any], *, step: int | None = None) -> None:
    """Report one epoch's metrics (names start with ``train/`` or ``val/``).

    Call it the same number of times on every DDP rank. ``step`` is the MLflow step
    (default: the report's number). Raises :class:`TrialStopped` after the report when a
    divergence rule fires; the scheduler stops a trial by ending its process.
    """
    ctx = _context()
    clean: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.startswith(("train/", "val/")):
            raise ValueError(
                f"orchestrator.report: metric names start with train/ or val/, got {key!r}"
            )
        try:
            clean[key] = float(value)  # also a 0-d tensor or a numpy number
        except (TypeError, ValueError):
            raise TypeError(
                f"orchestrator.report: {key} must be a number, got {value!r}"
            ) from None
    epoch = len(ctx.history) + 1
    result: dict[str, Any] = {**clean, EPOCH: epoch, STEP: step or epoch}
    ctx.history.append(result)
    verdict = None
    if ctx.trial.rank == 0:
        reason = ctx.rules.check(ctx.history)
        verdict = (reason.code, reason.detail) if reason is not None else None
    verdict = _from_rank_zero(verdict, ctx.trial.world_size)
    if verdict is not None:
        result.update({STOP_REASON: verdict[0], STOP_DETAIL: verdict[1], STOP_STEP: epoch})
    ctx.send(result)
    if verdict is not None:
        raise TrialStopped(verdict[1])


def run_python_trial(
    spec: TrialSpec, send: Report, restored: Any = None, *, checkpoints: bool = False
) -> None:
    """Call the trial's entrypoint in this process (a one-worker trial, or a DDP worker).

    Same signature as the built-in loop (``training.loop.run_trial``); ``restored`` and
    ``checkpoints`` are unused: the user's function keeps its own state in
    ``Trial.checkpoint_dir`` and resumes from ``Trial.resume_from``."""
    global _current
    from orchestrator.divergence import build_rules
    from orchestrator.tasks.python.config import PythonTaskConfig

    config = spec.config()
    task = config.task
    assert isinstance(task, PythonTaskConfig)
    rank, world = _rank_and_world()
    own_dir = os.path.join(spec.trial_dir, "checkpoints")
    earlier = os.path.isdir(own_dir) and bool(os.listdir(own_dir))
    os.makedirs(own_dir, exist_ok=True)
    trial = Trial(
        id=spec.trial_id,
        name=spec.trial_name,
        dir=spec.trial_dir,
        params={k: v for k, v in spec.params.items() if not k.startswith(PREFIX)},
        config=flatten(apply_params(config.hyperparameters(), spec.params)),
        checkpoint_dir=own_dir,
        resume_from=own_dir if earlier else None,
        rank=rank,
        world_size=world,
        epochs=config.train.epochs,
    )
    primary = config.primary
    rules = build_rules(config.stopping.divergence, (primary.metric, primary.mode))
    fn = task.load()
    _current = ctx = _Current(trial, send, rules)
    try:
        fn()
    except TrialStopped:
        return
    finally:
        _current = None
    if not ctx.history:
        raise RuntimeError(
            f"{task.entrypoint} returned without calling orchestrator.report(): a trial "
            "reports its metrics once per epoch"
        )
    done = len(ctx.history)
    if done < trial.epochs:
        send(
            {
                STOP_REASON: "exited_early",
                STOP_DETAIL: f"{task.entrypoint} returned after {done} of train.epochs = "
                f"{trial.epochs} reports",
                STOP_STEP: done,
                EPOCH: done,
            }
        )


def _context() -> _Current:
    if _current is None:
        raise RuntimeError(
            "orchestrator.report() and get_trial() work inside a trial of a sweep with "
            "task.kind: python (orchestrate sweep FILE), not on their own"
        )
    return _current


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size: Ray Train's process group when there is one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _from_rank_zero(verdict: tuple[str, str] | None, world: int) -> tuple[str, str] | None:
    """Rank 0's verdict on every rank: ranks that disagree would wait for each other."""
    if world == 1:
        return verdict
    import torch.distributed as dist

    box: list[Any] = [verdict]
    dist.broadcast_object_list(box, src=0)
    return box[0]


__all__ = ["Trial", "TrialStopped", "get_trial", "report", "run_python_trial"]

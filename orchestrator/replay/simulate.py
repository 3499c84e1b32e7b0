"""Replay curves through a stopping policy: the live sweep's rules and Ray's schedulers.

Time advances in reports. ``concurrency`` trials run at once, started in recorded order;
in each tick every running trial delivers its next report, in start order. Each report goes
first to the divergence rules (Tune consults its stopper before the scheduler), then to the
scheduler (the same Safe* classes a sweep uses, or Ray's plain ones for comparison); a
trial that reaches the end of its curve completes. Median stopping's PAUSE (only returned
while too few trials are comparable and others wait) is replayed as CONTINUE.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.lr_schedule import LrSchedule
from orchestrator.config.models import SCHEDULERS, SchedulerConfig
from orchestrator.divergence import DivergenceDetector
from orchestrator.replay.curves import Curve
from orchestrator.tuning.schedulers import TIME_ATTR


@dataclass(frozen=True)
class SchedulerSpec:
    """A registered scheduler's settings; ``safe`` False gives Ray's own class."""

    config: SchedulerConfig = field(default_factory=SCHEDULERS.default_factory())
    safe: bool = True
    #: the sweep's ``optim.schedule``, for a scheduler that reads it (forecast)
    lr_schedule: LrSchedule | None = None

    @classmethod
    def of(cls, kind: str, *, safe: bool = True, **settings: Any) -> SchedulerSpec:
        """``kind`` from the scheduler registry with ``settings`` (validated)."""
        return cls(SCHEDULERS.get(kind).model_validate({"kind": kind, **settings}), safe)

    def build(self, metric: str, mode: str, max_t: int) -> Any:
        """The Ray scheduler, with the sweep's LR schedule where it reads one."""
        scheduler = self.config.build(metric=metric, mode=mode, max_t=max_t, safe=self.safe)
        if self.lr_schedule is not None and hasattr(scheduler, "lr_schedule"):
            scheduler.lr_schedule = self.lr_schedule
        return scheduler

    @property
    def kind(self) -> str:
        return self.config.kind


@dataclass(frozen=True)
class Policy:
    """A named combination of a scheduler and (optionally) the divergence rules."""

    name: str
    scheduler: SchedulerSpec
    rules: DivergenceDetector | None


@dataclass
class Outcome:
    """How one trial ended under a policy."""

    trial: str
    reports: int  # reports consumed (the compute spent on it)
    total: int  # reports in the full curve
    stopped_by: str | None  # "rules", "scheduler" or None (ran to the end)
    reason: str | None = None  # the rule's code
    detail: str | None = None
    #: why the scheduler kept it (or did not judge it yet) although it looked behind
    protected: str | None = None


class _Trial:
    """The attributes Ray's schedulers read from a trial (``config``: its sampled params)."""

    def __init__(self, trial_id: str, config: dict[str, Any] | None = None) -> None:
        self.trial_id = trial_id
        self.status = "RUNNING"
        self.config = config or {}

    def __hash__(self) -> int:
        return hash(self.trial_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Trial) and other.trial_id == self.trial_id


class _Controller:
    """Stands in for Tune's controller: nothing is waiting, so nothing pauses."""

    def get_live_trials(self) -> list[Any]:
        return []


def replay(
    curves: list[Curve],
    policy: Policy,
    *,
    metric: str,
    mode: str,
    concurrency: int,
    max_t: int | None = None,
) -> list[Outcome]:
    """Run every curve through ``policy``; outcomes in the curves' order."""
    import numpy as np

    np.random.seed(0)  # ASHA picks a bracket at random when there are several
    max_t = max_t or max(len(c.history) for c in curves)
    spec = policy.scheduler
    scheduler: Any = spec.build(metric, mode, max_t)
    controller = _Controller()
    outcomes: dict[str, Outcome] = {}
    ids = {id(c): f"{i:05d}" for i, c in enumerate(curves)}
    pending = deque(curves)
    running: list[tuple[Curve, _Trial]] = []
    position: dict[str, int] = {}

    while pending or running:
        while pending and len(running) < concurrency:
            curve = pending.popleft()
            trial = _Trial(ids[id(curve)], curve.params)
            scheduler.on_trial_add(controller, trial)
            running.append((curve, trial))
            position[trial.trial_id] = 0
        still: list[tuple[Curve, _Trial]] = []
        for curve, trial in running:
            i = position[trial.trial_id]
            result = dict(curve.history[i], **{TIME_ATTR: i + 1})
            outcome = _step(curve, trial, i, result, policy, scheduler, controller)
            if outcome is None:
                position[trial.trial_id] = i + 1
                still.append((curve, trial))
            else:
                outcomes[curve.trial + ids[id(curve)]] = outcome
        running = still
    protected = getattr(scheduler, "protected", {})
    cut = getattr(scheduler, "cut", {})
    for c in curves:
        o = outcomes[c.trial + ids[id(c)]]
        o.protected = protected.get(ids[id(c)])
        if o.stopped_by == "scheduler" and o.detail is None:
            o.detail = cut.get(ids[id(c)])
    return [outcomes[c.trial + ids[id(c)]] for c in curves]


def _step(
    curve: Curve,
    trial: _Trial,
    i: int,
    result: dict[str, Any],
    policy: Policy,
    scheduler: Any,
    controller: _Controller,
) -> Outcome | None:
    from ray.tune.schedulers import TrialScheduler

    total = len(curve.history)
    if policy.rules is not None:
        reason = policy.rules.check(curve.history[: i + 1])
        if reason is not None:
            scheduler.on_trial_complete(controller, trial, dict(result, done=True))
            return Outcome(curve.trial, i + 1, total, "rules", reason.code, reason.detail)
    if i + 1 == total:
        scheduler.on_trial_complete(controller, trial, dict(result, done=True))
        return Outcome(curve.trial, total, total, None)
    if scheduler.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
        scheduler.on_trial_complete(controller, trial, dict(result, done=True))
        return Outcome(curve.trial, i + 1, total, "scheduler")
    return None

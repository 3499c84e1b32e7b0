"""Replay curves through a stopping policy: the live sweep's rules and Ray's schedulers.

Time advances in reports. ``concurrency`` trials run at once, started in recorded order;
in each tick every running trial delivers its next report, in start order. Each report goes
first to the divergence rules (Tune consults its stopper before the scheduler), then to the
scheduler (the same Safe* classes a sweep uses, or Ray's plain ones for comparison); a
trial that reaches the end of its curve completes. Median stopping's PAUSE (only returned
while too few trials are comparable and others wait) is replayed as CONTINUE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class Listener(Protocol):
    """Told every report a trial delivers and how it ended (the tabular search benchmark
    feeds a sampler from it)."""

    def on_report(self, curve: Curve, result: dict[str, Any]) -> None: ...

    def on_end(self, curve: Curve, outcome: Outcome) -> None: ...


def replay(
    curves: Iterable[Curve],
    policy: Policy,
    *,
    metric: str,
    mode: str,
    concurrency: int,
    max_t: int | None = None,
    listener: Listener | None = None,
) -> list[Outcome]:
    """Run every curve through ``policy``; outcomes in the order the curves started.

    ``curves`` is read lazily, one curve each time a slot frees up, so it may be a generator
    that decides the next curve from what ``listener`` was told (``max_t`` is then needed).
    """
    import numpy as np

    np.random.seed(0)  # ASHA picks a bracket at random when there are several
    if max_t is None:
        curves = list(curves)
        max_t = max(len(c.history) for c in curves)
    spec = policy.scheduler
    scheduler: Any = spec.build(metric, mode, max_t)
    controller = _Controller()
    outcomes: list[Outcome | None] = []
    pending = iter(curves)
    running: list[tuple[Curve, _Trial, int]] = []
    position: dict[str, int] = {}
    exhausted = False

    while not exhausted or running:
        while not exhausted and len(running) < concurrency:
            curve = next(pending, None)
            if curve is None:
                exhausted = True
                break
            trial = _Trial(f"{len(outcomes):05d}", curve.params)
            scheduler.on_trial_add(controller, trial)
            running.append((curve, trial, len(outcomes)))
            outcomes.append(None)
            position[trial.trial_id] = 0
        still: list[tuple[Curve, _Trial, int]] = []
        for curve, trial, slot in running:
            i = position[trial.trial_id]
            result = dict(curve.history[i], **{TIME_ATTR: i + 1})
            if listener is not None:
                listener.on_report(curve, result)
            outcome = _step(curve, trial, i, result, policy, scheduler, controller)
            if outcome is None:
                position[trial.trial_id] = i + 1
                still.append((curve, trial, slot))
            else:
                outcomes[slot] = outcome
                if listener is not None:
                    listener.on_end(curve, outcome)
        running = still
    # what a curve-aware scheduler said about each trial (the forecast scheduler keeps both)
    protected = getattr(scheduler, "protected", {})
    cut = getattr(scheduler, "cut", {})
    for slot, o in enumerate(outcomes):
        if o is None:
            continue
        o.protected = protected.get(f"{slot:05d}")
        if o.stopped_by == "scheduler" and o.detail is None:
            o.detail = cut.get(f"{slot:05d}")
    return [o for o in outcomes if o is not None]


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

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
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.config.lr_schedule import LrSchedule
from orchestrator.divergence import DivergenceDetector
from orchestrator.replay.curves import Curve
from orchestrator.tuning.schedulers import TIME_ATTR

SchedulerKind = Literal["none", "asha", "median", "hyperband", "forecast"]


@dataclass(frozen=True)
class SchedulerSpec:
    """What a replay needs to build a scheduler; ``safe`` False gives Ray's own class."""

    kind: SchedulerKind = "asha"
    grace_period: int = 1
    reduction_factor: float = 3.0
    brackets: int = 1
    min_samples_required: int = 3
    safe: bool = True
    #: forecast scheduler only (see ``orchestrator.tuning.forecast_scheduler``)
    band: float = 0.8
    start_fraction: float = 0.3
    warm_until: float = 0.5
    drop_gain: float = 0.3
    lr_schedule: LrSchedule | None = None


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


def build_scheduler(spec: SchedulerSpec, metric: str, mode: str, max_t: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    from orchestrator.tuning.safe_schedulers import SafeASHAScheduler, SafeMedianStoppingRule

    if spec.kind == "asha":
        cls = SafeASHAScheduler if spec.safe else ASHAScheduler
        return cls(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=spec.grace_period,
            reduction_factor=spec.reduction_factor,
            brackets=spec.brackets,
        )
    if spec.kind == "hyperband":
        # Ray's asynchronous Hyperband: ASHA over several brackets of grace periods
        return ASHAScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=spec.grace_period,
            reduction_factor=spec.reduction_factor,
            brackets=max(spec.brackets, 3),
        )
    if spec.kind == "forecast":
        from orchestrator.tuning.forecast_scheduler import ForecastScheduler

        return ForecastScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=spec.grace_period,
            reduction_factor=spec.reduction_factor,
            brackets=spec.brackets,
            band=spec.band,
            start_fraction=spec.start_fraction,
            warm_until=spec.warm_until,
            drop_gain=spec.drop_gain,
            lr_schedule=spec.lr_schedule,
        )
    if spec.kind == "median":
        mcls = SafeMedianStoppingRule if spec.safe else MedianStoppingRule
        return mcls(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            grace_period=spec.grace_period,
            min_samples_required=spec.min_samples_required,
        )
    return FIFOScheduler()


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
    scheduler = build_scheduler(policy.scheduler, metric, mode, max_t)
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
            if policy.scheduler.kind != "none":
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
            if policy.scheduler.kind != "none":
                scheduler.on_trial_complete(controller, trial, dict(result, done=True))
            return Outcome(curve.trial, i + 1, total, "rules", reason.code, reason.detail)
    if i + 1 == total:
        if policy.scheduler.kind != "none":
            scheduler.on_trial_complete(controller, trial, dict(result, done=True))
        return Outcome(curve.trial, total, total, None)
    if policy.scheduler.kind == "none":
        return None
    if scheduler.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
        scheduler.on_trial_complete(controller, trial, dict(result, done=True))
        return Outcome(curve.trial, i + 1, total, "scheduler")
    return None

"""A Ray Tune scheduler that cuts a trial only when its *forecast* cannot reach the rung.

ASHA compares trials by their value at a rung, so it cuts slow starters and runs whose
learning rate has not dropped yet: exactly the ones a detector sweep is after. This
scheduler keeps ASHA's shape (rungs at ``grace_period x reduction_factor^k`` epochs; the top
``1/reduction_factor`` of a rung continue) but what a rung records is each trial's point
forecast of its *final* objective (:mod:`orchestrator.tuning.forecast`), and a trial is cut
only when its *optimistic* forecast stays below the rung's cutoff. A curve the forecast
cannot judge yet (not started, still accelerating) is re-judged at its next report until
``warm_until x max_t``. ``brackets > 1`` hedges over grace periods as Hyperband does:
trials go to the brackets in turn (not at random, so a replay is deterministic), bracket
``b`` with its first rung at ``grace_period x reduction_factor^b``.

Deterministic for a given order of reports: no random numbers; cost per decision is one
forecast (a few hundred float operations) plus a sorted insert.
"""

from __future__ import annotations

import bisect
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from orchestrator.config.lr_schedule import LrSchedule, schedule_with
from orchestrator.reserved import STOP_REASON
from orchestrator.tuning.forecast import Forecast, forecast, noise_of
from orchestrator.tuning.schedulers import TIME_ATTR
from orchestrator.tuning.trial_end import folder_of, record_decision

#: who cut a trial, in ``orch.stopped_by`` and the end summary
BY = "forecast"


@dataclass
class _Rung:
    points: list[float] = field(default_factory=list)  # sorted point forecasts recorded here
    rises: list[float] = field(default_factory=list)  # sorted rises of the curves judged here
    max_lr: float = 0.0  # the largest base learning rate judged here
    noises: list[float] = field(default_factory=list)  # sorted noise estimates judged here

    def cutoff(self, reduction_factor: float) -> float | None:
        """ASHA's cutoff (``np.percentile``'s linear interpolation) over the forecasts."""
        if not self.points:
            return None
        q = (1 - 1 / reduction_factor) * (len(self.points) - 1)
        lo = math.floor(q)
        hi = min(lo + 1, len(self.points) - 1)
        return self.points[lo] + (q - lo) * (self.points[hi] - self.points[lo])

    def median_rise(self) -> float:
        return _median(self.rises)

    def median_noise(self) -> float:
        return _median(self.noises)


def _median(xs: list[float]) -> float:
    """Median of a sorted list (0 when empty)."""
    if not xs:
        return 0.0
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


@dataclass
class _TrialState:
    bracket: int
    schedule: LrSchedule
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # higher is better
    judged: float = 0.0  # the highest milestone this trial was judged at
    lr: float | None = None  # base learning rate: ``optim.lr``, else the first ``train/lr``


class ForecastScheduler(FIFOScheduler):
    """Rung-based early stopping on forecasts of the final objective (see module doc).

    ``band``: width of the optimistic forecast in noise units. ``start_fraction``: a curve
    that rose less than this fraction of the median rise of the trials judged at the same
    rung has not started. ``warm_until``: until this fraction of ``max_t`` such a curve is
    not judged. ``drop_gain``: relative gain an LR drop ahead may still bring a trial with
    the highest learning rate of its rung (scaled by its LR over that one), the drop known
    from ``lr_schedule`` and each trial's sampled ``optim.schedule.*`` and ``optim.lr``.
    """

    def __init__(
        self,
        time_attr: str = TIME_ATTR,
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 100,
        grace_period: int = 1,
        reduction_factor: float = 3.0,
        brackets: int = 1,
        band: float = 0.8,
        start_fraction: float = 0.3,
        warm_until: float = 0.5,
        drop_gain: float = 0.3,
        lr_schedule: LrSchedule | None = None,
    ) -> None:
        super().__init__()
        if grace_period < 1 or grace_period >= max_t:
            raise ValueError(f"grace_period must be in [1, max_t), got {grace_period}")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor}")
        if mode not in (None, "max", "min"):
            raise ValueError(f"mode must be max or min, got {mode!r}")
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._max_t, self._rf = max_t, reduction_factor
        self._band, self._start_fraction = band, start_fraction
        self._warm_until, self._drop_gain = warm_until, drop_gain
        #: the sweep's ``optim.schedule``; a trial's sampled ``optim.schedule.*`` apply on top
        self.lr_schedule = lr_schedule or LrSchedule()
        self._milestones: list[list[float]] = []
        for b in range(brackets):
            ms: list[float] = []
            m = grace_period * reduction_factor**b
            while m < max_t:
                ms.append(m)
                m *= reduction_factor
            self._milestones.append(ms)
        self._rungs: dict[tuple[int, float], _Rung] = {}
        self._trials: dict[str, _TrialState] = {}
        self._added = 0
        self._num_stopped = 0
        #: trial id -> why it was kept although its point forecast was below a cutoff, or
        #: not judged yet (latest reason); read by ``orchestrate replay --trials``
        self.protected: dict[str, str] = {}
        #: trial id -> why it was cut
        self.cut: dict[str, str] = {}

    # -- Ray's TrialScheduler interface -------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if not self._metric or self._mode not in ("max", "min"):
            raise ValueError(
                f"ForecastScheduler needs a metric and mode max|min, got {self._metric!r}, "
                f"{self._mode!r}"
            )
        self._state(trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        t = result.get(self._time_attr)
        if t is None or result.get(STOP_REASON):
            return TrialScheduler.CONTINUE  # nothing to compare, or the trial ends itself
        assert self._metric is not None
        value = result.get(self._metric)
        if value is None:
            return TrialScheduler.CONTINUE  # no evaluation due at this report
        st = self._state(trial)
        sign = 1.0 if self._mode == "max" else -1.0
        if not (isinstance(value, int | float) and math.isfinite(value)):
            return self._stop(trial, f"{self._metric} is {value} at epoch {t:g}")
        if st.lr is None:
            lr = result.get("train/lr")
            st.lr = float(lr) if isinstance(lr, int | float) and lr > 0 else None
        st.times.append(float(t))
        st.values.append(sign * float(value))
        due = [m for m in self._milestones[st.bracket] if st.judged < m <= t]
        if not due or t >= self._max_t:
            return TrialScheduler.CONTINUE
        return self._judge(trial, st, due[-1], float(t))

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        self._trials.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._trials.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return f"Using ForecastScheduler: num_stopped={self._num_stopped}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))

    # -- the decision --------------------------------------------------------------------

    def horizon(self, bracket: int, milestone: float) -> float:
        """Where a trial judged at ``milestone`` is forecast to: the bracket's next rung
        (or the end). A forecast as far ahead as the curve is long is still informative;
        one to the end from the first rung is mostly band."""
        later = [m for m in self._milestones[bracket] if m > milestone]
        return float(later[0] if later else self._max_t)

    def forecast_of(self, trial_id: str, milestone: float, rung: _Rung | None = None) -> Forecast:
        """The trial's forecast at the horizon of ``milestone`` (what the rung judges)."""
        st = self._trials[trial_id]
        t = st.times[-1]
        # the higher a trial's learning rate among its peers', the more its drop gives
        # (the plateau before the drop is a noise floor that scales with the LR)
        share = 1.0
        if rung is not None and st.lr:
            share = st.lr / max(rung.max_lr, st.lr)
        return forecast(
            st.times,
            st.values,
            self.horizon(st.bracket, milestone),
            band=self._band,
            min_rise=self._start_fraction * rung.median_rise() if rung else 0.0,
            # the trials of a sweep share a validation set, so their noise is alike: a
            # short curve borrows its peers' estimate when its own is smaller
            min_noise=rung.median_noise() if rung else 0.0,
            drop=st.schedule.drop_ahead(t, self._max_t),
            drop_gain=self._drop_gain * share,
        )

    def _judge(self, trial: Any, st: _TrialState, milestone: float, t: float) -> str:
        rung = self._rungs.setdefault((st.bracket, milestone), _Rung())
        f = self.forecast_of(trial.trial_id, milestone, rung)
        point, upper = f.point, f.upper
        if f.phase == "warming":
            if t < self._warm_until * self._max_t:
                self.protected[trial.trial_id] = (
                    f"not judged at epoch {t:g} (rung {milestone:g}): {f.why}"
                )
                return TrialScheduler.CONTINUE
            # out of patience: judged on a straight line through its last two reports
            slope = 0.0
            if len(st.values) > 1:
                rise = max(st.values[-1] - st.values[-2], 0.0)
                slope = rise / max(st.times[-1] - st.times[-2], 1.0)
            upper = point + slope * (self.horizon(st.bracket, milestone) - t)
            upper += self._band * f.noise
        cutoff = rung.cutoff(self._rf)
        size = len(rung.points)
        bisect.insort(rung.points, point)
        bisect.insort(rung.rises, max(st.values) - st.values[0])
        rung.max_lr = max(rung.max_lr, st.lr or 0.0)
        bisect.insort(rung.noises, noise_of(st.values))
        st.judged = milestone
        if cutoff is None:
            return TrialScheduler.CONTINUE
        words = self._words(point, upper, cutoff, st, milestone, size)
        if upper < cutoff:
            return self._stop(trial, words)
        if point < cutoff:
            self.protected[trial.trial_id] = f"kept at epoch {t:g}: {words}; {f.why}"
        return TrialScheduler.CONTINUE

    def _words(
        self, point: float, upper: float, cutoff: float, st: _TrialState, rung: float, size: int
    ) -> str:
        sign = 1.0 if self._mode == "max" else -1.0
        best = "optimistic" if self._mode == "max" else "best case"
        now = sign * st.values[-1]
        # a slow starter spared while warming up is judged for its rung at a later epoch
        return (
            f"forecast rung at epoch {rung:g}: {self._metric} {now:.4g} at epoch "
            f"{st.times[-1]:g}, forecast "
            f"{sign * point:.4g} at epoch {self.horizon(st.bracket, rung):g} ({best} "
            f"{sign * upper:.4g}) against "
            f"the rung's cutoff {sign * cutoff:.4g} (the top 1/{self._rf:g} of {size} "
            "forecasts recorded there continue)"
        )

    def _stop(self, trial: Any, detail: str) -> str:
        self._num_stopped += 1
        self.cut[trial.trial_id] = detail
        self.protected.pop(trial.trial_id, None)
        record_decision(folder_of(trial), BY, detail)
        return TrialScheduler.STOP

    def _state(self, trial: Any) -> _TrialState:
        st = self._trials.get(trial.trial_id)
        if st is None:
            params = getattr(trial, "config", None) or {}
            try:
                schedule = schedule_with(self.lr_schedule, params)
            except ValueError:  # e.g. MLflow's string params in a replay: keep the sweep's
                schedule = self.lr_schedule
            st = _TrialState(self._added % len(self._milestones), schedule)
            lr = params.get("optim.lr")
            try:
                st.lr = float(lr) if lr is not None else None
            except (TypeError, ValueError):
                st.lr = None
            self._added += 1
            self._trials[trial.trial_id] = st
        return st

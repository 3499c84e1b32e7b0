"""Ray's ASHA and median stopping rule with a NaN/missing objective counted as the worst.

See :mod:`orchestrator.tuning.schedulers` for why. Module-level classes (not built on the
fly) so Tune can pickle them into its experiment state.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, TrialScheduler

from orchestrator.tuning.schedulers import WORST, with_worst_objective
from orchestrator.tuning.trial_end import folder_of, record_decision

log = logging.getLogger(__name__)


class WorstOnNonfinite:
    """Mixin for a Ray scheduler that has ``_metric`` and ``_mode`` set."""

    _metric: str | None
    _mode: str | None
    _time_attr: str

    def _fix(self, result: dict[str, Any]) -> dict[str, Any]:
        # only results the base class would compare (it skips those without its time attr)
        if result and self._metric and self._mode and self._time_attr in result:
            return with_worst_objective(result, self._metric, self._mode)
        return result

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        fixed = self._fix(result)
        return super().on_trial_result(tune_controller, trial, fixed)  # type: ignore[misc]

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        fixed = self._fix(result)
        if self._metric and fixed and self._metric not in fixed:
            # a healthy trial whose last report had no evaluation due: its earlier reports
            # are on record. Ray's median rule would store this result and raise KeyError
            # on the metric at its next comparison, ending the whole sweep.
            return
        super().on_trial_complete(tune_controller, trial, fixed)  # type: ignore[misc]


def _fmt(value: float) -> str:
    if not math.isfinite(value) or abs(value) >= WORST:
        return "NaN/missing"
    return f"{value:.4g}"


class SafeASHAScheduler(WorstOnNonfinite, ASHAScheduler):
    """ASHA whose rungs record a NaN/missing objective as the worst value, and which says
    at which rung, with which value against which cutoff, it cut a trial."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        fixed = self._fix(result)
        rung = self._rung_before(trial, fixed)
        action = super().on_trial_result(tune_controller, trial, result)
        t = fixed.get(self._time_attr)
        if (
            action == TrialScheduler.STOP
            and rung is not None
            and t is not None
            and t < self._max_t
        ):
            milestone, cutoff, size = rung
            value = fixed[self._metric]  # type: ignore[index]
            if cutoff is None:
                detail = f"ASHA cut it at the rung of epoch {milestone:g}"
            else:
                worse = "below" if self._mode == "max" else "above"
                detail = (
                    f"ASHA rung at epoch {milestone:g}: {self._metric} {_fmt(value)} {worse} "
                    f"the rung's cutoff {_fmt(self._metric_op * cutoff)} (the top "
                    f"1/{self._reduction_factor:g} of {size} trials recorded there continue)"
                )
            record_decision(folder_of(trial), "asha", detail)
        return action

    def _rung_before(self, trial: Any, result: dict[str, Any]) -> tuple[float, Any, int] | None:
        """The rung this result lands in and its cutoff before it is recorded there
        (Ray's ``_Bracket.on_result`` records the trial's value into it)."""
        if self._time_attr not in result or self._metric not in result:
            return None
        bracket = self._trial_info.get(trial.trial_id)
        if bracket is None:
            return None
        t = result[self._time_attr]
        for milestone, recorded in bracket._rungs:
            if t < milestone or trial.trial_id in recorded:
                continue
            return milestone, bracket.cutoff(recorded), len(recorded)
        return None


class SafeMedianStoppingRule(WorstOnNonfinite, MedianStoppingRule):
    """Median stopping whose running means count a NaN/missing objective as the worst,
    and which says with which best value against which median it stopped a trial."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action in (TrialScheduler.STOP, TrialScheduler.PAUSE) and trial in self._stopped_trials:
            t: Any = result.get(self._time_attr)
            detail = f"the median stopping rule stopped it at epoch {t}"
            try:
                others = [o for o in self._trials_beyond_time(t) if o is not trial]
                means = [m for m in (self._running_mean(o, t) for o in others) if np.isfinite(m)]
                median = float(np.median(means))
                best = float(self._best_result(trial))
                worse = "below" if self._mode == "max" else "above"
                detail = (
                    f"median stopping at epoch {t}: best {self._metric} so far {_fmt(best)} "
                    f"{worse} the median {_fmt(median)} of {len(means)} other trials' "
                    "running means"
                )
            except Exception as exc:  # Ray's private helpers moved: keep the short detail
                log.debug("median rule detail unavailable: %s", exc)
            record_decision(folder_of(trial), "median", detail)
        return action

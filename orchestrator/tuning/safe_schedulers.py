"""Ray's ASHA and median stopping rule with a NaN/missing objective counted as the worst.

See :mod:`orchestrator.tuning.schedulers` for why. Module-level classes (not built on the
fly) so Tune can pickle them into its experiment state.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

from orchestrator.tuning.schedulers import with_worst_objective


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


class SafeASHAScheduler(WorstOnNonfinite, ASHAScheduler):
    """ASHA whose rungs record a NaN/missing objective as the worst value."""


class SafeMedianStoppingRule(WorstOnNonfinite, MedianStoppingRule):
    """Median stopping whose running means count a NaN/missing objective as the worst."""

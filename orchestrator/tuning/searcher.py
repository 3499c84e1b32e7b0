"""Ray's OptunaSearch, told the truth about trials that never produced a usable objective.

Ray's ``OptunaSearch`` indexes every result by the metric (a KeyError for a report without
it, e.g. the report that announces a NaN stop) and passes NaN straight to ``study.tell``,
which rejects it and leaves the Optuna trial RUNNING forever. Here a report without a finite
objective is not forwarded, and a trial that ends without one is told to Optuna as PRUNED.

A trial stopped by a divergence rule (its last result carries ``orch.stop_reason``) is told
as PRUNED too, even when its objective is still finite (an exploding loss with a mAP that has
not caught up yet): its reported values say nothing about where the region converges. TPE
ranks pruned trials below every completed one (among them, by how far they got and their
last intermediate value), so it learns to avoid the region without being fed a made-up
value. Trials cut by ASHA / the median rule are ordinary completions at a lower budget.

The study lives in an Optuna storage (:mod:`.study_storage`), and each finished trial
carries user attrs that lead back to the rest of the sweep: its Tune trial id, why it
stopped, and its MLflow run (id, and the run's ``orch.journal_key`` tag, known even before
MLflow has the run).
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from orchestrator.reserved import STOP_DETAIL, STOP_REASON, TRIAL_ID


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SweepSearch(OptunaSearch):
    """OptunaSearch with NaN/missing objectives handled as described in the module doc.

    ``tracker`` (a :class:`~orchestrator.tracking.mlflow_tracker.SweepTracker`, optional)
    names each trial's MLflow run in its user attrs.
    """

    def __init__(self, *args: Any, tracker: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = tracker

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if all(_finite(result.get(m)) for m in metrics):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            for key, value in self._user_attrs(trial_id, result or {}).items():
                ot_trial.set_user_attr(key, value)
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        diverged = bool(result and result.get(STOP_REASON))
        if result and (diverged or not all(_finite(result.get(m)) for m in metrics)):
            result = {k: v for k, v in result.items() if k not in metrics}
        super().on_trial_complete(trial_id, result, error)

    def _user_attrs(self, trial_id: str, result: dict[str, Any]) -> dict[str, str]:
        attrs = {TRIAL_ID: trial_id}
        for key in (STOP_REASON, STOP_DETAIL):
            if result.get(key):
                attrs[key] = str(result[key])[:500]
        if self.tracker is not None:
            from orchestrator.tracking.journal import trial_key
            from orchestrator.tracking.writer import RUN_KEY_TAG

            attrs[RUN_KEY_TAG] = f"{self.tracker.journal_dir.parent.name}/{trial_key(trial_id)}"
            run_id = self.tracker.trial_runs.get(trial_id)
            if run_id:
                attrs["mlflow.run_id"] = run_id
        return attrs

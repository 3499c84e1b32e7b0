"""Ray's OptunaSearch, told the truth about trials that never produced a usable objective,
started from known configurations and from earlier sweeps.

Ray's ``OptunaSearch`` indexes every result by the metric (a KeyError for a report without
it, e.g. the report that announces a NaN stop) and passes NaN straight to ``study.tell``,
which rejects it and leaves the Optuna trial RUNNING forever. Here a report without a finite
objective is not forwarded, and a trial that ends without one is told to Optuna as PRUNED.

A trial stopped by a divergence rule (its last result carries ``orch.stop_reason``) says
nothing about where its region converges, even when its objective is still finite. With
``sweep.divergence_as: constraint`` (the default) every trial carries the Optuna constraint
``orch.diverged`` (1 = diverged, 0 = not); a sampler that reads constraints (TPE, GP,
NSGA-II/III) gets the diverged trial as a COMPLETE, infeasible trial, valued at its last
finite objective (else the worst completed value: only GP's objective model sees it, its
feasibility model is what steers), so it learns where training blows up. Other samplers,
and ``divergence_as: pruned``, get it as PRUNED. docs/search.md says what each sampler does
with either. Trials cut by ASHA / the median rule are ordinary completions at a lower budget.

``sweep.start_from`` points are enqueued (``study.enqueue_trial``), so the first trials take
exactly those values and the sampler draws only the keys a point leaves out (a grid start
point must name a whole grid point); Ray's own ``points_to_evaluate`` does not work with a
define-by-run space. ``warm_start`` trials are added to the study as finished trials before
the first suggestion.

The study lives in an Optuna storage (:mod:`.study_storage`), and each finished trial
carries user attrs that lead back to the rest of the sweep: its Tune trial id, why it
stopped, and its MLflow run (id, and the run's ``orch.journal_key`` tag, known even before
MLflow has the run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from orchestrator.reserved import DIVERGED, STOP_DETAIL, STOP_REASON, TRIAL_ID


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SweepSearch(OptunaSearch):
    """OptunaSearch with NaN/missing objectives, divergence, start points and earlier
    trials handled as described in the module doc. ``storage``/``study_name`` keep the study
    for optuna-dashboard; ``tracker`` (a
    :class:`~orchestrator.tracking.mlflow_tracker.SweepTracker`, optional) names each trial's
    MLflow run in its user attrs."""

    def __init__(
        self,
        *,
        space: Any,
        metric: str | list[str],
        mode: str | list[str],
        sampler: Any,
        start_from: Sequence[dict[str, Any]] = (),
        warm_trials: Sequence[Any] = (),
        divergence_as: str = "constraint",
        reads_constraints: bool = False,
        storage: Any = None,
        study_name: str | None = None,
        tracker: Any = None,
    ) -> None:
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            storage=storage,
            study_name=study_name,
        )
        self.tracker = tracker
        self._constraint = divergence_as == "constraint"
        self._infeasible_complete = self._constraint and reads_constraints
        self._last_finite: dict[str, list[float]] = {}
        study = self.study
        for trial in warm_trials:
            study.add_trial(trial)
        for point in start_from:
            study.enqueue_trial(dict(point), skip_if_exists=False)

    @property
    def study(self) -> Any:
        """The Optuna study (tests and benchmarks read its trials)."""
        study: Any = self._ot_study  # set up in __init__: the space is always given
        return study

    def _metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        metrics = self._metrics()
        if all(_finite(result.get(m)) for m in metrics):
            self._last_finite[trial_id] = [float(result[m]) for m in metrics]
            from optuna.exceptions import UpdateFinishedTrialError

            try:
                super().on_trial_result(trial_id, result)
            except UpdateFinishedTrialError:
                self._told_before(trial_id)

    def _told_before(self, trial_id: str) -> bool:
        """Whether the study already holds this trial as finished although the searcher's
        own state does not: a resumed sweep's study storage is newer than Tune's last
        snapshot, so a trial that ended in between runs again (re-reporting its
        ``finished.json``). Its first ending stands; the study is not told twice."""
        if trial_id in self._completed_trials:
            return True
        ot_trial = self._ot_trials.get(trial_id)
        # a study's trial numbers are the indexes of its trial list
        if (
            ot_trial is None
            or not self.study.get_trials(deepcopy=False)[ot_trial.number].state.is_finished()
        ):
            return False
        self._completed_trials.add(trial_id)
        self._last_finite.pop(trial_id, None)
        return True

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if self._told_before(trial_id):
            return
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            for key, value in self._user_attrs(trial_id, result or {}).items():
                ot_trial.set_user_attr(key, value)
        metrics = self._metrics()
        diverged = bool(result and result.get(STOP_REASON))
        last = self._last_finite.pop(trial_id, None)
        if ot_trial is None or error:
            super().on_trial_complete(trial_id, result, error)
            return
        if self._constraint:
            ot_trial.set_constraint(DIVERGED, 1.0 if diverged else 0.0)
        if diverged and self._infeasible_complete:
            values = last or self._worst_values()
            if values is not None:
                from optuna.trial import TrialState

                told = values if len(values) > 1 else values[0]
                self.study.tell(ot_trial, told, state=TrialState.COMPLETE)
                self._completed_trials.add(trial_id)
                return
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

    def _worst_values(self) -> list[float] | None:
        """Per objective, the worst value of the study's completed trials (None if none)."""
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return None
        worst = []
        for i, direction in enumerate(self.study.directions):
            values = [t.values[i] for t in done]
            worst.append(max(values) if direction == StudyDirection.MINIMIZE else min(values))
        return worst

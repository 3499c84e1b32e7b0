"""Ray's PBT and PB2 as a sweep uses them (docs/pbt.md).

Three things differ from Ray's classes:

- **Optuna draws the starting population.** Ray refuses any search algorithm beside PBT,
  because a searcher learns from results as if a trial's config never changed. Here the
  searcher only proposes the members (with the sweep's sampler, start points, conditions
  and batch plan); the population scheduler changes them afterwards, and the Optuna study
  keeps each member's starting values (docs/pbt.md says so).
- **A diverged member is replaced, not lost.** The divergence stopper of a population
  sweep does not stop a member whose rule fired: it moves the reason into
  ``orch.pbt.replaced`` and leaves the decision here. The member then clones the best
  member that has a checkpoint to give, at once (its own values are what went wrong);
  before any member has one, it is stopped with its reason, as in any other sweep.
- **NaN is the worst value** (as in ``safe_schedulers.py``; Ray's PBT leaves a NaN member
  out of the ranking, so it is never replaced), and a member's last epoch is never
  perturbed (it would restart from an earlier checkpoint to train epochs it has done).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from ray.train._internal.session import _FutureTrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2
from ray.tune.search.sample import lograndint, loguniform, quniform, randint, uniform

from orchestrator.config.models import ParamSpec
from orchestrator.reserved import EPOCH, PBT_REPLACED, STEP, STOP_DETAIL, STOP_REASON, STOP_STEP
from orchestrator.tuning.schedulers import TIME_ATTR, with_worst_objective
from orchestrator.tuning.trial_end import DECISION_FILE, folder_of, write_json

log = logging.getLogger(__name__)


def mutation_domain(spec: ParamSpec) -> Any:
    """What PBT resamples a key from: a choice's list (perturbed by moving to a neighbour),
    else the range as a Tune domain (perturbed by a factor, see :class:`KeepInSpace`)."""
    if spec.choice is not None:
        return list(spec.choice)
    low, high = spec.bounds
    if spec.int_ is not None:
        if spec.log:
            return lograndint(int(low), int(high) + 1)
        return randint(int(low), int(high) + 1)
    if spec.log:
        return loguniform(low, high)
    if spec.step is not None:
        return quniform(low, high, spec.step)
    return uniform(low, high)


class KeepInSpace:
    """Ray's explore step multiplies a range by a perturbation factor with no regard for its
    bounds (a focal alpha of 0.9 x 1.2 is no probability): values are put back into their
    ``space:`` range, onto its step, and integers stay integers."""

    def __init__(self, specs: dict[str, ParamSpec]) -> None:
        self.specs = dict(specs)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, spec in self.specs.items():
            value = config.get(key)
            if spec.choice is not None or not isinstance(value, int | float):
                continue
            low, high = spec.bounds
            kept = min(max(float(value), low), high)
            if spec.step is not None:
                kept = min(low + round((kept - low) / spec.step) * spec.step, high)
            config[key] = round(kept) if spec.int_ is not None else kept
        return config


class _WithoutSearch:
    """The controller as PBT's ``on_trial_add`` may see it: without a search algorithm, the
    one thing it refuses (see the module doc); everything else is the controller's."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)


class _Population:
    """What :class:`SweepPBT` and :class:`SweepPB2` add to Ray's classes (module doc)."""

    _metric: str | None
    _mode: str | None
    _trial_state: dict[Trial, Any]
    #: the members replaced after a divergence (what the summary can say)
    replaced: dict[str, list[str]]

    def __init__(self, *, last_epoch: int, **kwargs: Any) -> None:
        # a result without the objective (an error report) is skipped, not a crash
        super().__init__(time_attr=TIME_ATTR, require_attrs=False, **kwargs)  # type: ignore[call-arg]
        self.last_epoch = last_epoch
        self.replaced = {}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(_WithoutSearch(tune_controller), trial)  # type: ignore[misc]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if result.get(PBT_REPLACED):
            return self._replace(tune_controller, trial, result)
        if result.get("done") or int(result.get(EPOCH, 0) or 0) >= self.last_epoch:
            # the member's last report: a clone would restart from an earlier checkpoint
            # and train again epochs whose steps its run already has
            return TrialScheduler.CONTINUE
        if self._metric and self._mode:
            result = with_worst_objective(result, self._metric, self._mode)
        return super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]

    #: the sweep's ``train.epochs``: no member is perturbed at its last epoch
    last_epoch: int = 1 << 30

    def _replace(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        """Clone the best member that has a checkpoint to give into the diverged ``trial``;
        stop it with its reason when there is none."""
        donor = self._best_donor(trial)
        if donor is None:
            code, _, detail = str(result[PBT_REPLACED]).partition(": ")
            folder = folder_of(trial)
            if folder and os.path.isdir(folder):
                write_json(
                    os.path.join(folder, DECISION_FILE),
                    {
                        STOP_REASON: code,
                        STOP_DETAIL: f"{detail} (no member had a checkpoint to clone yet)",
                        STOP_STEP: result.get(STEP, result.get(TIME_ATTR)),
                    },
                )
            return TrialScheduler.STOP
        state = self._trial_state[trial]
        # a diverged member ranks last (Ray logs its score when it clones)
        state.last_score = -math.inf
        log.info("replacing diverged %s (%s) by a clone of %s", trial, result[PBT_REPLACED], donor)
        self._exploit(tune_controller, trial, donor)  # type: ignore[attr-defined]
        self.replaced.setdefault(trial.trial_id, []).append(donor.trial_id)
        return TrialScheduler.NOOP

    def _best_donor(self, trial: Trial) -> Trial | None:
        """The live member with the best score among those that kept a checkpoint at their
        last perturbation (the top quantile), its pending save resolved as Ray does."""
        ranked = sorted(
            (
                (s.last_score, t)
                for t, s in self._trial_state.items()
                if t is not trial
                and not t.is_finished()
                and s.last_checkpoint is not None
                and s.last_score is not None
                and not math.isnan(s.last_score)
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        for _, candidate in ranked:
            state = self._trial_state[candidate]
            if isinstance(state.last_checkpoint, _FutureTrainingResult):
                resolved = state.last_checkpoint.resolve()
                if not resolved or not resolved.checkpoint:
                    state.last_checkpoint = None
                    continue
                state.last_result = resolved.metrics
                state.last_checkpoint = resolved.checkpoint
            return candidate
        return None


class SweepPBT(_Population, PopulationBasedTraining):
    """Ray's ``PopulationBasedTraining`` with the module doc's changes."""


class SweepPB2(_Population, PB2):
    """Ray's ``PB2`` with the module doc's changes."""

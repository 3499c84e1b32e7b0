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
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from orchestrator.reserved import STOP_REASON


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SweepSearch(OptunaSearch):
    """OptunaSearch with NaN/missing objectives handled as described in the module doc."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if all(_finite(result.get(m)) for m in metrics):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        diverged = bool(result and result.get(STOP_REASON))
        if result and (diverged or not all(_finite(result.get(m)) for m in metrics)):
            result = {k: v for k, v in result.items() if k not in metrics}
        super().on_trial_complete(trial_id, result, error)

"""Schedulers: ``stopping.scheduler.kind`` -> a Ray Tune scheduler, one module each.

Every module of this package registers one :class:`~orchestrator.config.models.
SchedulerConfig` subclass in :data:`~orchestrator.config.models.SCHEDULERS` (``asha``,
``median``, ``forecast``, ``pbt``, ``pb2``, ``none``; ``population.py`` is the base of the
last two); adding a scheduler is adding a module (docs/extending.md).

Ray's ASHA compares ``reward < cutoff`` and its median rule drops non-finite running means,
so a trial whose objective is NaN is never "worse" than anyone: ASHA promotes it through
every rung and it trains to the end. Our schedulers first replace a NaN or infinite
objective (and a missing one in a trial's final result) by the worst finite value for the
mode, so such a trial loses every comparison (and is cut at its first rung), while the
cutoffs of the others stay finite.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from orchestrator.config.models import SweepConfig
from orchestrator.reserved import STOP_REASON

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

#: Tune's iteration counter: one report per epoch, so budgets are in epochs.
TIME_ATTR = "training_iteration"


#: stands for a NaN/missing objective: finite, so percentiles and means stay finite, and
#: beyond any real metric
WORST = 1e300


def worst_value(mode: str) -> float:
    """The worst finite objective for ``mode`` (``max``: -1e300, ``min``: +1e300)."""
    return -WORST if mode == "max" else WORST


def with_worst_objective(
    result: dict[str, Any], metric: str, mode: str, *, final: bool = False
) -> dict[str, Any]:
    """``result`` with a NaN/inf ``metric`` replaced by :func:`worst_value`.

    A *missing* metric is replaced only when ``final`` or when the result says why the trial
    stopped (``orch.stop_reason``): a report in which an evaluation is simply not due yet
    (evaluation every 2 epochs) is skipped, as Ray does, not punished.
    """
    value = result.get(metric)
    if value is None:
        if final or result.get(STOP_REASON):
            return {**result, metric: worst_value(mode)}
        return result
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return result if ok else {**result, metric: worst_value(mode)}


def build_scheduler(config: SweepConfig) -> TrialScheduler:
    """The configured scheduler; it compares trials by the primary objective."""
    scheduler = config.stopping.scheduler.build_for(config)
    if hasattr(scheduler, "lr_schedule"):
        # a scheduler that reads the learning-rate schedule (forecast) gets the sweep's;
        # each trial's sampled optim.schedule.* apply on top
        scheduler.lr_schedule = config.optim.schedule
    return scheduler

"""Scheduler registry: ``stopping.scheduler.kind`` -> a Ray Tune scheduler.

Ray's ASHA compares ``reward < cutoff`` and its median rule drops non-finite running means,
so a trial whose objective is NaN is never "worse" than anyone: ASHA promotes it through
every rung and it trains to the end. Our schedulers first replace a NaN or infinite
objective (and a missing one in a trial's final result) by the worst finite value for the
mode, so such a trial loses every comparison (and is cut at its first rung), while the
cutoffs of the others stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.config.models import (
    AshaScheduler,
    ForecastSchedulerConfig,
    MedianScheduler,
    SweepConfig,
)
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


def _asha(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from orchestrator.tuning.safe_schedulers import SafeASHAScheduler

    assert isinstance(cfg, AshaScheduler)
    return SafeASHAScheduler(
        time_attr=TIME_ATTR,
        max_t=config.train.epochs,
        grace_period=cfg.grace_period,
        reduction_factor=cfg.reduction_factor,
        brackets=cfg.brackets,
    )


def _median(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from orchestrator.tuning.safe_schedulers import SafeMedianStoppingRule

    assert isinstance(cfg, MedianScheduler)
    return SafeMedianStoppingRule(
        time_attr=TIME_ATTR,
        grace_period=cfg.grace_period,
        min_samples_required=cfg.min_samples_required,
    )


def _forecast(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from orchestrator.tuning.forecast_scheduler import ForecastScheduler

    assert isinstance(cfg, ForecastSchedulerConfig)
    return ForecastScheduler(
        time_attr=TIME_ATTR,
        max_t=config.train.epochs,
        grace_period=cfg.grace_period,
        reduction_factor=cfg.reduction_factor,
        brackets=cfg.brackets,
        band=cfg.band,
        start_fraction=cfg.start_fraction,
        warm_until=cfg.warm_until,
        drop_gain=cfg.drop_gain,
        lr_schedule=config.optim.schedule,
    )


def _none(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS: dict[str, Callable[[Any, SweepConfig], TrialScheduler]] = {
    "asha": _asha,
    "median": _median,
    "forecast": _forecast,
    "none": _none,
}


def build_scheduler(config: SweepConfig) -> TrialScheduler:
    """The configured scheduler; it compares trials by the primary objective."""
    cfg = config.stopping.scheduler
    return SCHEDULERS[cfg.kind](cfg, config)

"""Scheduler registry: ``stopping.scheduler.kind`` -> a Ray Tune scheduler."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.config.models import AshaScheduler, MedianScheduler, SweepConfig

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

#: Tune's iteration counter: one report per epoch, so budgets are in epochs.
TIME_ATTR = "training_iteration"


def _asha(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import ASHAScheduler

    assert isinstance(cfg, AshaScheduler)
    return ASHAScheduler(
        time_attr=TIME_ATTR,
        max_t=config.train.epochs,
        grace_period=cfg.grace_period,
        reduction_factor=cfg.reduction_factor,
        brackets=cfg.brackets,
    )


def _median(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import MedianStoppingRule

    assert isinstance(cfg, MedianScheduler)
    return MedianStoppingRule(
        time_attr=TIME_ATTR,
        grace_period=cfg.grace_period,
        min_samples_required=cfg.min_samples_required,
    )


def _none(cfg: Any, config: SweepConfig) -> TrialScheduler:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS: dict[str, Callable[[Any, SweepConfig], TrialScheduler]] = {
    "asha": _asha,
    "median": _median,
    "none": _none,
}


def build_scheduler(config: SweepConfig) -> TrialScheduler:
    """The configured scheduler; it compares trials by the primary objective."""
    cfg = config.stopping.scheduler
    return SCHEDULERS[cfg.kind](cfg, config)

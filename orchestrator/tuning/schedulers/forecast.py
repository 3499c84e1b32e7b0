"""``forecast``: rungs judged on forecasts of each trial's curve (slow starters and LR drops
ahead protected); the Ray scheduler is :mod:`orchestrator.tuning.forecast_scheduler`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from orchestrator.config.models import SCHEDULERS, SchedulerConfig
from orchestrator.tuning.schedulers import TIME_ATTR

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


@SCHEDULERS.register
class ForecastSchedulerConfig(SchedulerConfig):
    """Rungs like ASHA's, judged on forecasts of each trial's objective at the next rung: a
    trial is cut only when its optimistic forecast stays below the rung's cutoff; slow
    starters and LR drops ahead are protected (docs/stopping.md)."""

    kind: Literal["forecast"] = "forecast"
    grace_period: int = Field(2, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    #: Hyperband-style hedging: bracket b has its first rung at grace x rf^b
    brackets: int = Field(1, ge=1)
    #: width of the optimistic forecast, in units of the curve's own noise
    band: float = Field(0.8, ge=0)
    #: a curve that rose less than this fraction of its rung peers' median rise has not
    #: started, and is not judged ...
    start_fraction: float = Field(0.3, ge=0, le=1)
    #: ... until this fraction of the epochs
    warm_until: float = Field(0.5, ge=0, le=1)
    #: relative gain an LR drop ahead (optim.schedule) may still bring the trial with the
    #: highest learning rate of its rung
    drop_gain: float = Field(0.3, ge=0)

    def build(
        self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True
    ) -> TrialScheduler:
        # ``safe`` is moot: there is no Ray original; a NaN objective is always cut
        from orchestrator.tuning.forecast_scheduler import ForecastScheduler

        return ForecastScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=self.grace_period,
            reduction_factor=self.reduction_factor,
            brackets=self.brackets,
            band=self.band,
            start_fraction=self.start_fraction,
            warm_until=self.warm_until,
            drop_gain=self.drop_gain,
        )

"""``asha``: asynchronous successive halving (Ray's ``ASHAScheduler``, NaN = worst)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from orchestrator.config.models import SCHEDULERS, SchedulerConfig
from orchestrator.tuning.schedulers import TIME_ATTR

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


@SCHEDULERS.register
class AshaScheduler(SchedulerConfig):
    """Keeps the top ``1/reduction_factor`` of the trials at each rung (``grace_period``
    epochs, then x ``reduction_factor``)."""

    kind: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    brackets: int = Field(1, ge=1)

    def build(
        self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True
    ) -> TrialScheduler:
        from ray.tune.schedulers import ASHAScheduler

        from orchestrator.tuning.safe_schedulers import SafeASHAScheduler

        cls = SafeASHAScheduler if safe else ASHAScheduler
        return cls(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=self.grace_period,
            reduction_factor=self.reduction_factor,
            brackets=self.brackets,
        )

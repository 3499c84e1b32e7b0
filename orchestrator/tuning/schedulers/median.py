"""``median``: Ray's median stopping rule (NaN = worst)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from orchestrator.config.models import SCHEDULERS, SchedulerConfig
from orchestrator.tuning.schedulers import TIME_ATTR

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


@SCHEDULERS.register
class MedianScheduler(SchedulerConfig):
    """Stops a trial whose best result is worse than the median of the others' running
    means at the same epoch."""

    kind: Literal["median"] = "median"
    grace_period: int = Field(1, ge=0)
    min_samples_required: int = Field(3, ge=1)

    def build(
        self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True
    ) -> TrialScheduler:
        from ray.tune.schedulers import MedianStoppingRule

        from orchestrator.tuning.safe_schedulers import SafeMedianStoppingRule

        cls = SafeMedianStoppingRule if safe else MedianStoppingRule
        return cls(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            grace_period=self.grace_period,
            min_samples_required=self.min_samples_required,
        )

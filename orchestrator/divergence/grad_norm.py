"""``grad_explosion``: the gradient norm grows far beyond its early level."""

from __future__ import annotations

import statistics
from typing import ClassVar

from pydantic import Field

from orchestrator.config.divergence import RuleConfig, register_rule
from orchestrator.divergence.base import (
    DivergenceDetector,
    History,
    StopReason,
    check_count,
    check_factor,
    check_metric,
    finite_series,
    fmt,
)


class GradNormDetector(DivergenceDetector):
    """Fires when ``metric`` exceeds ``factor`` × the median of its first ``warmup`` values.

    The median of the first few reports is the run's own scale, so one threshold fits models
    whose gradient norms differ by orders of magnitude. ``patience`` consecutive reports above
    it are needed (1: the first one stops).
    """

    name = "grad_norm"

    def __init__(
        self,
        metric: str = "train/grad_norm",
        *,
        factor: float = 10.0,
        warmup: int = 3,
        patience: int = 1,
    ) -> None:
        check_metric(self.name, metric)
        check_factor(self.name, "factor", factor)
        check_count(self.name, "warmup", warmup, 1)
        check_count(self.name, "patience", patience, 1)
        self.metric, self.factor, self.warmup, self.patience = metric, factor, warmup, patience

    def check(self, history: History) -> StopReason | None:
        series = finite_series(history, self.metric)
        if len(series) <= self.warmup:
            return None
        base = statistics.median(v for _, v in series[: self.warmup])
        if base <= 0:
            return None
        run = 0
        for i, v in series[self.warmup :]:
            run = run + 1 if v > self.factor * base else 0
            if run >= self.patience:
                detail = (
                    f"{self.metric} = {fmt(v)} > {self.factor:g} × median of the first "
                    f"{self.warmup} reports {fmt(base)}"
                )
                return StopReason("grad_explosion", detail, i)
        return None


@register_rule
class GradNormRule(RuleConfig):
    """``train/grad_norm`` far above its early level (``grad_explosion``)."""

    name: ClassVar[str] = "grad_norm"
    priority: ClassVar[int] = 30
    detector: ClassVar[type[DivergenceDetector]] = GradNormDetector

    metric: str = Field("train/grad_norm", min_length=1)
    #: healthy norms drift by 2-3× over a run; 10× the early median is a blow-up
    factor: float = Field(10.0, gt=1)
    #: reports whose median is the run's own scale
    warmup: int = Field(3, ge=1)
    patience: int = Field(1, ge=1)

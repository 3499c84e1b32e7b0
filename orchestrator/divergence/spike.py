"""``spike``: a metric jumps far above its recent level and stays there."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from orchestrator.config.divergence import RuleConfig, register_rule
from orchestrator.divergence.base import (
    DivergenceDetector,
    History,
    StopReason,
    check_count,
    check_factor,
    check_fraction,
    check_metric,
    finite_series,
    fmt,
)


class SpikeDetector(DivergenceDetector):
    """Fires when ``metric`` exceeds ``factor`` × its EMA for ``patience`` reports in a row.

    The EMA (``ema = alpha·v + (1 − alpha)·ema``, seeded with the first value) tracks the
    level before the spike: a spiking value does not update it, otherwise a sustained spike
    would raise its own baseline and never be seen. The first ``warmup`` values only feed the
    EMA (the early loss drops too fast for a level to mean much). With ``patience`` 2, a
    single spike that recovers on the next report is tolerated — that is ordinary training.
    """

    name = "spike"

    def __init__(
        self,
        metric: str = "train/loss",
        *,
        factor: float = 2.0,
        alpha: float = 0.3,
        warmup: int = 3,
        patience: int = 2,
    ) -> None:
        check_metric(self.name, metric)
        check_factor(self.name, "factor", factor)
        check_fraction(self.name, "alpha", alpha)
        check_count(self.name, "warmup", warmup, 1)
        check_count(self.name, "patience", patience, 1)
        self.metric, self.factor, self.alpha = metric, factor, alpha
        self.warmup, self.patience = warmup, patience

    def check(self, history: History) -> StopReason | None:
        ema: float | None = None
        run = 0
        for n, (i, v) in enumerate(finite_series(history, self.metric)):
            if ema is None:
                ema = v
                continue
            if n >= self.warmup and ema > 0 and v > self.factor * ema:
                run += 1
                if run >= self.patience:
                    detail = (
                        f"{self.metric} = {fmt(v)} > {self.factor:g} × EMA {fmt(ema)} "
                        f"for {run} reports in a row"
                    )
                    return StopReason("spike", detail, i)
                continue
            run = 0
            ema = self.alpha * v + (1 - self.alpha) * ema
        return None


@register_rule
class SpikeRule(RuleConfig):
    """A minimised metric above ``factor`` × its EMA for ``patience`` reports in a row."""

    name: ClassVar[str] = "spike"
    priority: ClassVar[int] = 60
    detector: ClassVar[type[DivergenceDetector]] = SpikeDetector

    metric: str = Field("train/loss", min_length=1)
    #: healthy epoch-averaged losses move by a few percent per epoch; doubling is abnormal
    factor: float = Field(2.0, gt=1)
    #: EMA smoothing: weight of the newest value
    alpha: float = Field(0.3, gt=0, lt=1)
    #: reports that only feed the EMA
    warmup: int = Field(3, ge=1)
    #: 2: one spike that recovers on the next report is tolerated
    patience: int = Field(2, ge=1)

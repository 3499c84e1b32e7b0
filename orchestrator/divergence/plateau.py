"""``plateau``: a metric that never started to improve stops improving."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from orchestrator.config.divergence import RuleConfig, register_rule
from orchestrator.divergence.base import (
    DivergenceDetector,
    History,
    StopReason,
    check_count,
    check_fraction,
    check_metric,
    finite_series,
    require,
)

Mode = Literal["min", "max"]


def _gain(old: float, new: float, mode: Mode) -> float:
    """Relative improvement from ``old`` to ``new`` (positive = better)."""
    delta = old - new if mode == "min" else new - old
    if old == 0:
        return float("inf") if delta > 0 else 0.0
    return delta / abs(old)


class PlateauDetector(DivergenceDetector):
    """Fires when the best value improved by less than ``min_improvement`` over ``window``.

    At report ``n`` (after ``warmup`` reports, ``n ≥ window``) the best so far is compared
    with the best as of ``window`` reports earlier, relative to the latter. A run whose best
    is already ``min_progress`` better than its first value has learned and is converging,
    not stuck: it is never a plateau (``None`` drops that exemption, and then a converged run
    is stopped too). ``warmup`` must outlast the flat start of a slow but healthy run.
    """

    name = "plateau"

    def __init__(
        self,
        metric: str = "train/loss",
        *,
        mode: Mode = "min",
        window: int = 6,
        min_improvement: float = 0.02,
        warmup: int = 10,
        min_progress: float | None = 0.25,
    ) -> None:
        check_metric(self.name, metric)
        require(mode in ("min", "max"), self.name, "mode", mode, "min|max")
        check_count(self.name, "window", window, 2)
        check_fraction(self.name, "min_improvement", min_improvement)
        check_count(self.name, "warmup", warmup, 0)
        if min_progress is not None:
            require(min_progress > 0, self.name, "min_progress", min_progress, "> 0 or null")
        self.metric, self.mode, self.window = metric, mode, window
        self.min_improvement, self.warmup = min_improvement, warmup
        self.min_progress = min_progress

    def check(self, history: History) -> StopReason | None:
        series = finite_series(history, self.metric)
        pick = min if self.mode == "min" else max
        best: list[float] = []  # best[n] = best of the first n + 1 values
        for n, (i, v) in enumerate(series):
            best.append(v if not best else pick(best[-1], v))
            if n < max(self.warmup, self.window):
                continue
            if (
                self.min_progress is not None
                and _gain(series[0][1], best[n], self.mode) >= self.min_progress
            ):
                continue
            gain = _gain(best[n - self.window], best[n], self.mode)
            if gain < self.min_improvement:
                total = _gain(series[0][1], best[n], self.mode)
                detail = (
                    f"best {self.metric} improved {gain:.1%} over the last {self.window} reports "
                    f"(< {self.min_improvement:.1%}), {total:.1%} since the first report"
                )
                return StopReason("plateau", detail, i)
        return None


@register_rule
class PlateauRule(RuleConfig):
    """A metric that never improved stays flat."""

    name: ClassVar[str] = "plateau"
    priority: ClassVar[int] = 90
    detector: ClassVar[type[DivergenceDetector]] = PlateauDetector

    metric: str = Field("train/loss", min_length=1)
    mode: Literal["min", "max"] = "min"
    window: int = Field(6, ge=2)
    #: relative improvement of the best over ``window`` reports below this is flat
    min_improvement: float = Field(0.02, gt=0, lt=1)
    #: no plateau before this many reports: slow starters sit flat for several epochs
    warmup: int = Field(10, ge=0)
    #: a best this much better than the first value means the run learned (converging, not
    #: stuck); null stops converged runs too
    min_progress: float | None = Field(0.25, gt=0)

"""``oscillation``: a metric swings up and down with a large amplitude."""

from __future__ import annotations

import itertools
import statistics
from typing import ClassVar

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
    fmt,
    require,
)


class OscillationDetector(DivergenceDetector):
    """Fires when the last ``window`` values zig-zag with a large swing.

    A *swing* is a change of direction where both the step before and the step after are at
    least ``min_amplitude`` × the window's level (median absolute value). The rule fires when
    swings occur in at least ``min_flips`` of the ``window − 2`` places where the direction
    can change. Counting only large steps tells a learning rate that is too high (steps of
    tens of percent) from noise around a converged value (a few percent), and a descending
    curve with one healthy spike makes only two swings (up, then down), not the three of four
    the defaults need.
    """

    name = "oscillation"

    def __init__(
        self,
        metric: str = "train/loss",
        *,
        window: int = 6,
        min_flips: float = 0.75,
        min_amplitude: float = 0.15,
    ) -> None:
        check_metric(self.name, metric)
        # three values are the fewest with two differences, hence one possible flip
        check_count(self.name, "window", window, 3)
        require(0 < min_flips <= 1, self.name, "min_flips", min_flips, "in (0, 1]")
        check_fraction(self.name, "min_amplitude", min_amplitude)
        self.metric, self.window = metric, window
        self.min_flips, self.min_amplitude = min_flips, min_amplitude

    def check(self, history: History) -> StopReason | None:
        series = finite_series(history, self.metric)
        for end in range(self.window, len(series) + 1):
            values = [v for _, v in series[end - self.window : end]]
            level = statistics.median(abs(v) for v in values)
            if level <= 0:
                continue
            big = self.min_amplitude * level
            diffs = [b - a for a, b in itertools.pairwise(values)]
            swings = sum(
                1 for a, b in itertools.pairwise(diffs) if a * b < 0 and min(abs(a), abs(b)) >= big
            )
            if swings >= self.min_flips * (self.window - 2):
                detail = (
                    f"{self.metric} swung up and down by >= {self.min_amplitude:.0%} of its level "
                    f"{fmt(level)} {swings}/{self.window - 2} times in {self.window} reports"
                )
                return StopReason("oscillation", detail, series[end - 1][0])
        return None


@register_rule
class OscillationRule(RuleConfig):
    """Large zig-zag of a metric over a window (learning rate too high)."""

    name: ClassVar[str] = "oscillation"
    priority: ClassVar[int] = 70
    detector: ClassVar[type[DivergenceDetector]] = OscillationDetector

    metric: str = Field("train/loss", min_length=1)
    window: int = Field(6, ge=3)
    #: fraction of the ``window - 2`` possible direction changes that must occur
    min_flips: float = Field(0.75, gt=0, le=1)
    #: median |difference| relative to the median level; noise near convergence is ~5%
    min_amplitude: float = Field(0.15, gt=0, lt=1)

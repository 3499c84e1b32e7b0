"""``collapse``: a maximised metric never rises, or falls far from its best.

Small validation sets make mAP noisy: 0.085 then 0.035 is a 59% fall of two noisy reads of
the same model, not a collapse. So the rule compares *running medians* of ``window``
evaluations (a single bad read cannot move a median of 3), asks a drop to exceed both
``drop`` of the best running median and ``noise`` times the curve's own relative noise
(estimated from its second differences, which cancel the trend, up to its best, over its
median level: a small validation set's noise grows with the metric), and asks the floor to hold for
``patience`` evaluations in a row.
"""

from __future__ import annotations

import statistics
from typing import ClassVar

from pydantic import Field

from orchestrator.config.divergence import Objective, RuleConfig, register_rule
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


def curve_noise(values: list[float]) -> float:
    """Standard deviation of a curve's noise: the root mean square of its second differences
    over sqrt 6 (a second difference of independent noise of deviation s has deviation
    s sqrt 6, and cancels a locally linear trend)."""
    d2 = [(values[i + 1] - 2 * values[i] + values[i - 1]) ** 2 for i in range(1, len(values) - 1)]
    return (sum(d2) / len(d2) / 6) ** 0.5 if d2 else 0.0


class CollapseDetector(DivergenceDetector):
    """Fires on a metric to be maximised (``val/map``) that is dead or has collapsed.

    * floor: from the ``min_evals``-th evaluation on, ``patience`` evaluations in a row
      below ``floor`` while the training loss (``loss``) has stopped improving: its lowest
      value over those evaluations' reports is not ``progress`` below its lowest before
      them. A run whose metric is still near zero but whose loss keeps falling is a slow
      starter (a small model, a high learning rate waiting for its decay), not a dead one.
    * drop: the running median of the last ``window`` evaluations is below
      ``(1 − drop)`` × the best earlier running median, that best reached ``min_best`` (a
      fall from 0.01 to 0.004 is noise around nothing), and the relative fall exceeds
      ``noise`` × the curve's relative noise (its noise over its median level) before
      that best (so the collapse itself does not hide in it).

    Evaluations are the reports that carry the metric, so a run that evaluates every other
    epoch is counted in evaluations. ``floor=None`` or ``drop=None`` disables that half;
    ``window=1, noise=0, patience=1`` is the raw-value rule.
    """

    name = "collapse"

    def __init__(
        self,
        metric: str = "val/map",
        *,
        floor: float | None = 0.02,
        min_evals: int = 10,
        patience: int = 3,
        drop: float | None = 0.5,
        min_best: float = 0.05,
        window: int = 3,
        noise: float = 4.0,
        loss: str | None = "train/loss",
        progress: float = 0.02,
    ) -> None:
        check_metric(self.name, metric)
        require(floor is None or floor > 0, self.name, "floor", floor, "> 0 or null")
        check_count(self.name, "min_evals", min_evals, 1)
        check_count(self.name, "patience", patience, 1)
        check_count(self.name, "window", window, 1)
        if drop is not None:
            check_fraction(self.name, "drop", drop)
        require(min_best > 0, self.name, "min_best", min_best, "> 0")
        require(noise >= 0, self.name, "noise", noise, ">= 0")
        self.metric, self.floor, self.min_evals, self.patience = metric, floor, min_evals, patience
        self.drop, self.min_best, self.window, self.noise = drop, min_best, window, noise
        require(0 <= progress < 1, self.name, "progress", progress, "in [0, 1)")
        self.loss, self.progress = loss, progress

    def _loss_stalled(self, history: History, first: int, last: int) -> bool:
        """Whether the training loss after report ``first`` (up to ``last``) got no
        ``progress`` below its lowest value up to ``first`` (True when there is no loss to
        look at)."""
        if self.loss is None:
            return True
        losses = finite_series(history, self.loss)
        before = [v for i, v in losses if i <= first]
        during = [v for i, v in losses if first < i <= last]
        if not before or not during:
            return True
        return min(during) > (1 - self.progress) * min(before)

    def check(self, history: History) -> StopReason | None:
        series = finite_series(history, self.metric)
        values = [v for _, v in series]
        below = 0
        best: float | None = None
        best_n = 0  # evaluations up to the end of the best window: the noise is theirs
        for n, (i, v) in enumerate(series, start=1):
            below = below + 1 if self.floor is not None and v < self.floor else 0
            if n >= self.min_evals and below >= self.patience:
                first = series[n - self.patience][0]
                if self._loss_stalled(history, first, i):
                    stalled = "" if self.loss is None else f", {self.loss} no longer falling"
                    detail = (
                        f"{self.metric} = {fmt(v)} < floor {self.floor:g} for {below} "
                        f"evaluations in a row, after {n} evaluations{stalled}"
                    )
                    return StopReason("collapse", detail, i)
            if n < self.window:
                continue
            level = statistics.median(values[n - self.window : n])
            if self.drop is not None and best is not None and best >= self.min_best:
                # noise of a small validation set grows with the metric: relative to its level
                before = values[:best_n]
                rel = curve_noise(before) / max(statistics.median(before), 1e-12)
                fall = (best - level) / best
                if level < (1 - self.drop) * best and fall > self.noise * rel:
                    what = "" if self.window == 1 else f" (median of the last {self.window})"
                    detail = (
                        f"{self.metric} = {fmt(level)}{what} fell more than {self.drop:.0%} "
                        f"from its best {fmt(best)}, {fall / max(rel, 1e-12):.1f}x its "
                        f"relative noise {rel:.0%}"
                    )
                    return StopReason("collapse", detail, i)
            if best is None or level > best:
                best, best_n = level, n
        return None


#: what collapse watches when neither it nor a maximised objective names a metric
DEFAULT_METRIC = "val/map"


@register_rule
class CollapseRule(RuleConfig):
    """A maximised metric that stays dead or falls far from its best."""

    name: ClassVar[str] = "collapse"
    priority: ClassVar[int] = 80
    detector: ClassVar[type[DivergenceDetector]] = CollapseDetector

    #: null: the primary objective when it is maximised, else ``val/map``
    metric: str | None = Field(None, min_length=1)
    #: below this after ``min_evals`` evaluations: the run never learned
    floor: float | None = Field(0.02, gt=0)
    min_evals: int = Field(10, ge=1)
    #: ... for this many evaluations in a row (a slow starter's first rise is not missed)
    patience: int = Field(3, ge=1)
    #: ... while this training loss has stopped falling (null: the metric alone) ...
    loss: str | None = Field("train/loss", min_length=1)
    #: ... by this fraction of its lowest value before those evaluations
    progress: float = Field(0.02, ge=0, lt=1)
    #: a fall by this fraction of the best running median stops the run ...
    drop: float | None = Field(0.5, gt=0, lt=1)
    #: ... once the best reached this much (a fall from near zero is noise) ...
    min_best: float = Field(0.05, gt=0)
    #: ... comparing medians of this many evaluations (one bad read of a small validation
    #: set moves no median of 3) ...
    window: int = Field(3, ge=1)
    #: ... and the relative fall exceeds this many times the curve's relative noise (the
    #: best of many running medians sits ~2 noise units high, the current one ~2 low)
    noise: float = Field(4.0, ge=0)

    def build(self, objective: Objective) -> DivergenceDetector:
        """Without a metric, collapse watches a maximised objective; a minimised one cannot
        collapse towards zero, so ``val/map`` is watched instead (and the rule stays silent
        where it is not reported)."""
        settings = self.settings()
        if settings["metric"] is None:
            maximised = objective is not None and objective[1] == "max"
            settings["metric"] = objective[0] if objective and maximised else DEFAULT_METRIC
        return CollapseDetector(**settings)

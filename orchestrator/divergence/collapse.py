"""``collapse``: a maximised metric never rises, or falls far from its best."""

from __future__ import annotations

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


class CollapseDetector(DivergenceDetector):
    """Fires on a metric to be maximised (``val/map``) that is dead or has collapsed.

    * floor: from the ``min_evals``-th evaluation on, a value below ``floor``.
    * drop: a value below ``(1 − drop)`` × the best earlier value, once that best reached
      ``min_best`` (a fall from 0.01 to 0.004 is noise around nothing, not a collapse).

    Evaluations are the reports that carry the metric, so a run that evaluates every other
    epoch is counted in evaluations. ``floor=None`` or ``drop=None`` disables that half.
    """

    name = "collapse"

    def __init__(
        self,
        metric: str = "val/map",
        *,
        floor: float | None = 0.02,
        min_evals: int = 10,
        drop: float | None = 0.5,
        min_best: float = 0.05,
    ) -> None:
        check_metric(self.name, metric)
        require(floor is None or floor > 0, self.name, "floor", floor, "> 0 or null")
        check_count(self.name, "min_evals", min_evals, 1)
        if drop is not None:
            check_fraction(self.name, "drop", drop)
        require(min_best > 0, self.name, "min_best", min_best, "> 0")
        self.metric, self.floor, self.min_evals = metric, floor, min_evals
        self.drop, self.min_best = drop, min_best

    def check(self, history: History) -> StopReason | None:
        best: float | None = None
        for n, (i, v) in enumerate(finite_series(history, self.metric), start=1):
            if self.floor is not None and n >= self.min_evals and v < self.floor:
                detail = f"{self.metric} = {fmt(v)} < floor {self.floor:g} after {n} evaluations"
                return StopReason("collapse", detail, i)
            if (
                self.drop is not None
                and best is not None
                and best >= self.min_best
                and v < (1 - self.drop) * best
            ):
                detail = (
                    f"{self.metric} = {fmt(v)} fell more than {self.drop:.0%} from its best "
                    f"{fmt(best)}"
                )
                return StopReason("collapse", detail, i)
            best = v if best is None else max(best, v)
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
    #: a fall by this fraction of the best value stops the run ...
    drop: float | None = Field(0.5, gt=0, lt=1)
    #: ... once the best reached this much (a fall from near zero is noise)
    min_best: float = Field(0.05, gt=0)

    def build(self, objective: Objective) -> DivergenceDetector:
        """Without a metric, collapse watches a maximised objective; a minimised one cannot
        collapse towards zero, so ``val/map`` is watched instead (and the rule stays silent
        where it is not reported)."""
        settings = self.settings()
        if settings["metric"] is None:
            maximised = objective is not None and objective[1] == "max"
            settings["metric"] = objective[0] if objective and maximised else DEFAULT_METRIC
        return CollapseDetector(**settings)

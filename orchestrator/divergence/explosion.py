"""``explosion``: a metric grows far beyond its starting or best value."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from orchestrator.config.divergence import RuleConfig, register_rule
from orchestrator.divergence.base import (
    DivergenceDetector,
    History,
    StopReason,
    check_factor,
    check_metric,
    finite_series,
    fmt,
    require,
)

Reference = Literal["initial", "best"]


class ExplosionDetector(DivergenceDetector):
    """Fires at the first value above ``factor`` × the reference of a minimised ``metric``.

    ``reference="initial"``: the first finite value (the loss is never worse than at the
    start in a run that learns anything). ``reference="best"``: the lowest value before this
    report, which also catches a run that learned and then blew up. Only positive references
    count: a ratio to zero or a negative value means nothing.
    """

    name = "explosion"

    def __init__(
        self,
        metric: str = "train/loss",
        *,
        factor: float = 10.0,
        reference: Reference = "best",
        code: str = "explosion",
    ) -> None:
        check_metric(self.name, metric)
        check_factor(self.name, "factor", factor)
        require(
            reference in ("initial", "best"), self.name, "reference", reference, "initial|best"
        )
        self.metric, self.factor, self.reference, self.code = metric, factor, reference, code

    def check(self, history: History) -> StopReason | None:
        ref: float | None = None
        for i, v in finite_series(history, self.metric):
            if ref is not None and ref > 0 and v > self.factor * ref:
                detail = f"{self.metric} = {fmt(v)} > {self.factor:g} × {self.reference} value "
                detail += fmt(ref)
                return StopReason(self.code, detail, i)
            if ref is None or (self.reference == "best" and v < ref):
                ref = v
        return None


@register_rule
class ExplosionRule(RuleConfig):
    """A minimised metric far above its first or best value."""

    name: ClassVar[str] = "explosion"
    priority: ClassVar[int] = 50
    detector: ClassVar[type[DivergenceDetector]] = ExplosionDetector

    metric: str = Field("train/loss", min_length=1)
    factor: float = Field(10.0, gt=1)
    reference: Literal["initial", "best"] = "best"

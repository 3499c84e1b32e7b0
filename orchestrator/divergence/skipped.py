"""``amp_overflow``: fp16 loss scaling keeps skipping optimizer steps."""

from __future__ import annotations

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
)


class SkippedStepsDetector(DivergenceDetector):
    """Fires when more than ``max_fraction`` of a report's optimizer steps were skipped for
    ``patience`` reports in a row.

    With fp16 mixed precision the gradient scaler skips a step whose gradients overflowed and
    lowers its scale; a few skipped steps while it finds the scale are how AMP works, not
    divergence, so the trial loop counts them (``train/skipped_frac``) instead of treating
    their infinite gradients as a NaN. Only a run that keeps overflowing is stopped.
    """

    name = "amp_overflow"

    def __init__(
        self,
        metric: str = "train/skipped_frac",
        *,
        max_fraction: float = 0.5,
        patience: int = 2,
    ) -> None:
        check_metric(self.name, metric)
        check_fraction(self.name, "max_fraction", max_fraction)
        check_count(self.name, "patience", patience, 1)
        self.metric, self.max_fraction, self.patience = metric, max_fraction, patience

    def check(self, history: History) -> StopReason | None:
        run = 0
        for i, v in finite_series(history, self.metric):
            run = run + 1 if v > self.max_fraction else 0
            if run >= self.patience:
                detail = (
                    f"{self.metric} = {v:.0%} > {self.max_fraction:.0%} of the optimizer steps "
                    f"skipped (fp16 overflow) for {run} reports in a row"
                )
                return StopReason("amp_overflow", detail, i)
        return None


@register_rule
class AmpOverflowRule(RuleConfig):
    """fp16 loss scaling that keeps skipping steps (``amp_overflow``); a few are normal."""

    name: ClassVar[str] = "amp_overflow"
    priority: ClassVar[int] = 40
    detector: ClassVar[type[DivergenceDetector]] = SkippedStepsDetector

    metric: str = Field("train/skipped_frac", min_length=1)
    max_fraction: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(2, ge=1)

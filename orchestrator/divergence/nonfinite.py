"""``nonfinite``: a watched metric is NaN or infinite."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from orchestrator.config.divergence import RuleConfig, register_rule
from orchestrator.divergence.base import DivergenceDetector, History, StopReason, as_number

#: metrics watched when none are named: everything the trial reports about itself
DEFAULT_PREFIXES = ("train/", "val/")


class NonfiniteDetector(DivergenceDetector):
    """Fires on the first report where a watched metric is NaN, +inf or -inf.

    ``metrics`` names the watched metrics; ``None`` watches every numeric key starting with
    ``train/`` or ``val/`` (so ``orch.*`` bookkeeping is ignored). Within one report the
    metrics are checked in sorted order, so the detail is deterministic.
    """

    name = "nonfinite"

    def __init__(self, metrics: Sequence[str] | None = None, *, code: str = "nonfinite") -> None:
        if metrics is not None:
            bad = [m for m in metrics if not isinstance(m, str) or not m]
            if isinstance(metrics, str) or bad or not metrics:
                raise ValueError(
                    "nonfinite: metrics must be a non-empty list of names or null, "
                    f"got {metrics!r}"
                )
        self.metrics = None if metrics is None else tuple(metrics)
        self.code = code

    def check(self, history: History) -> StopReason | None:
        for i, report in enumerate(history):
            keys = self.metrics or sorted(k for k in report if k.startswith(DEFAULT_PREFIXES))
            for key in keys:
                v = as_number(report.get(key))
                if v is not None and not math.isfinite(v):
                    return StopReason(self.code, f"{key} is {v} at report {i}", i)
        return None


@register_rule
class NonfiniteRule(RuleConfig):
    """Stop on the first NaN/±inf of a watched metric."""

    name: ClassVar[str] = "nonfinite"
    priority: ClassVar[int] = 10
    detector: ClassVar[type[DivergenceDetector]] = NonfiniteDetector

    #: null: every numeric ``train/*`` and ``val/*`` metric
    metrics: list[str] | None = Field(None, min_length=1)

"""The divergence extension point: a detector looks at a trial's reports and says why to stop.

A *history* is the list of a trial's reports, oldest first, each a mapping of metric name to
value (``{"train/loss": 3.2, "val/map": 0.12, ...}``); keys may be missing from a report and
values may be NaN or infinite. Detectors are pure functions of the whole history, so one
detector serves a live Ray stopper, the in-trial check and the offline replay of a sweep.

Every detector is *causal*: whether it fires at report ``i`` depends only on reports
``0..i``, so ``check(history)`` returns the first report at which the rule would have
stopped the trial live, and ``check(history[: reason.index + 1])`` returns the same reason.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

History = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class StopReason:
    """Why a trial should stop.

    ``code`` is a short machine-readable rule name (``nonfinite``, ``spike``,
    ``component_explosion:loss_giou`` ...), ``detail`` a human sentence with the values that
    triggered it, ``index`` the position in the history of the report where it was detected.
    """

    code: str
    detail: str
    index: int


class DivergenceDetector(ABC):
    """A stopping rule over a trial's history.

    Implementations check their constructor arguments at once (``ValueError`` naming the rule
    and the value) and never raise on odd data: a missing key or a non-numeric value is
    skipped, and the rule returns ``None`` when it cannot decide.
    """

    #: the rule's name in ``stopping.divergence`` and in error messages
    name: str = "detector"

    @abstractmethod
    def check(self, history: History) -> StopReason | None:
        """The earliest report at which this rule fires, or ``None`` if it never does."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (NaN and inf included), else ``None``.

    Booleans are not metrics, so they are ``None`` too.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def finite_series(history: History, metric: str) -> list[tuple[int, float]]:
    """``(report index, value)`` for every report where ``metric`` is a finite number.

    Non-finite values are left to the ``nonfinite`` rule; the other rules reason about the
    finite part of a curve only.
    """
    out = []
    for i, report in enumerate(history):
        v = as_number(report.get(metric))
        if v is not None and math.isfinite(v):
            out.append((i, v))
    return out


def require(ok: bool, rule: str, arg: str, value: Any, what: str) -> None:
    """Raise ``ValueError("<rule>: <arg> must be <what>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{rule}: {arg} must be {what}, got {value!r}")


def check_factor(rule: str, arg: str, value: float) -> None:
    """A multiplicative threshold: finite and > 1 (1 or less would fire on a flat curve)."""
    require(math.isfinite(value) and value > 1, rule, arg, value, "a finite number > 1")


def check_fraction(rule: str, arg: str, value: float) -> None:
    """A fraction strictly between 0 and 1."""
    require(0 < value < 1, rule, arg, value, "in (0, 1)")


def check_count(rule: str, arg: str, value: int, minimum: int) -> None:
    """A whole count of reports, at least ``minimum``."""
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        rule,
        arg,
        value,
        f"a whole number >= {minimum}",
    )


def check_metric(rule: str, metric: str) -> None:
    require(isinstance(metric, str) and bool(metric), rule, "metric", metric, "a metric name")


def fmt(value: float) -> str:
    """A value short enough for a stop detail."""
    return f"{value:.4g}"

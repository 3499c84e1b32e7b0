"""Single parameter values against their ``space:`` entry: checking and parsing."""

from __future__ import annotations

import math
from typing import Any

from orchestrator.config.models import ParamSpec


def value_problem(spec: ParamSpec, value: Any) -> str | None:
    """Why ``value`` is not a value ``spec`` can take (None when it is)."""
    if spec.choice is not None:
        return None if value in spec.choice else f"must be one of {spec.choice}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number in {list(spec.bounds)}"
    if spec.int_ is not None and value != int(value):
        return "must be a whole number"
    low, high = spec.bounds
    if not (math.isfinite(value) and low <= value <= high):
        return f"out of range [{low:g}, {high:g}]"
    if spec.step is not None:
        steps = (value - low) / spec.step
        if abs(steps - round(steps)) > 1e-9:
            return f"must be low + a multiple of step {spec.step:g}"
    return None


def parse_logged(spec: ParamSpec, text: Any) -> Any:
    """A value as MLflow logged it (a string) back in the parameter's type; other values
    are returned as they are."""
    if not isinstance(text, str):
        return text
    if spec.choice is not None:
        return next((c for c in spec.choice if str(c) == text), text)
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if spec.int_ is not None and number == int(number) else number

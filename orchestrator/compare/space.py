"""A trial's searched parameters recovered from MLflow with the sweep's resolved space.

MLflow keeps every parameter as a string and logs all hyperparameters, inactive
conditional ones with the file's fixed value; the space tells which were sampled and how
to type them back.
"""

from __future__ import annotations

from typing import Any

from orchestrator.config.conditions import evaluation_order, is_active
from orchestrator.config.models import ParamSpec


def parse_space(space: dict[str, dict[str, Any]]) -> dict[str, ParamSpec]:
    """The resolved sweep file's ``space:`` as the config's own models."""
    return {name: ParamSpec.model_validate(spec) for name, spec in space.items()}


def typed_value(raw: str, spec: ParamSpec) -> Any:
    """A value MLflow logged as ``str(value)`` turned back into the sampled value."""
    if spec.choice is not None:
        for choice in spec.choice:
            if str(choice) == raw:
                return choice
        raise ValueError(f"{raw!r} is not one of {spec.choice}")
    return int(float(raw)) if spec.int_ is not None else float(raw)


def sampled_params(params: dict[str, str], specs: dict[str, ParamSpec]) -> dict[str, Any] | None:
    """The values the sampler chose (active parameters only, typed), or None when a logged
    value does not fit the space (the run was not a trial of this space)."""
    sampled: dict[str, Any] = {}
    for name in evaluation_order(specs):
        spec = specs[name]
        if not is_active(spec, sampled) or name not in params:
            continue
        try:
            sampled[name] = typed_value(params[name], spec)
        except ValueError:
            return None
    return sampled

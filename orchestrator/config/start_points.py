"""``sweep.start_from``: configurations evaluated first, checked against ``space:``.

Each point is validated like a sampled value would be: its keys must be ``space`` keys,
each value one the parameter can take, and a conditional key needs its condition met by the
point itself (a sampled parent could switch the branch off).
"""

from __future__ import annotations

import difflib
from typing import Any

from orchestrator.config.batch import batch_problem
from orchestrator.config.conditions import is_active
from orchestrator.config.models import SweepConfig
from orchestrator.config.values import value_problem


def start_point_problems(config: SweepConfig) -> list[tuple[tuple[str, ...], str, Any]]:
    """``(path, rule, value)`` for every bad key or value of ``sweep.start_from``."""
    out: list[tuple[tuple[str, ...], str, Any]] = []
    for i, point in enumerate(config.sweep.start_from):
        base: tuple[str, ...] = ("sweep", "start_from", f"[{i}]")
        for key, value in point.items():
            path = (*base, key)
            spec = config.space.get(key)
            if spec is None:
                close = difflib.get_close_matches(key, list(config.space), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                out.append((path, f"not a key of space{hint}", key))
                continue
            rule = value_problem(spec, value)
            if rule:
                out.append((path, rule, value))
            elif not is_active(spec, point):
                out.append(
                    (
                        path,
                        f"inactive: its condition {spec.when} is not met by this point "
                        "(give the parent keys their values too)",
                        value,
                    )
                )
        problem = config.sweep.sampler.start_point_problem(dict(config.space), point)
        if problem:
            out.append((base, problem, point))
        effective = point.get("batch.effective", config.batch.effective)
        micro = point.get("batch.micro", config.batch.micro)
        if ("batch.effective" in point or "batch.micro" in point) and isinstance(effective, int):
            problem = batch_problem(
                effective, micro if micro == "auto" else int(micro or 0), config.resources.workers
            )
            if problem:
                out.append((base, problem, {"effective": effective, "micro": micro}))
    return out

"""The Pareto front of a multi-objective sweep: trials no other trial beats on every
objective at once."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.compare.records import ObjectiveSpec, Trial


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one."""
    better = False
    for x, y, mode in zip(a, b, modes, strict=True):
        gx, gy = (x, y) if mode == "max" else (-x, -y)
        if gx < gy:
            return False
        better = better or gx > gy
    return better


def front_indices(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order."""
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p, modes) for j, q in enumerate(points) if j != i)
    ]


def pareto_trials(trials: Sequence[Trial], objectives: Sequence[ObjectiveSpec]) -> list[Trial]:
    """The Pareto-optimal trials; trials lacking a finite value of some objective never are."""
    scored = [t for t in trials if all(t.objective(o.metric) is not None for o in objectives)]
    points = [[t.objective(o.metric) or 0.0 for o in objectives] for t in scored]
    return [scored[i] for i in front_indices(points, [o.mode for o in objectives])]

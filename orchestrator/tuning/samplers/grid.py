"""``grid``: every combination of finite values, in random order (Optuna's ``GridSampler``)."""

from __future__ import annotations

import math
from typing import Any, Literal

from orchestrator.config.models import SAMPLERS, ParamSpec, SamplerConfig

#: a range with more points than this is not a grid anyone means to run
MAX_POINTS = 100_000


def grid_values(spec: ParamSpec) -> list[Any] | None:
    """The finite values of ``spec`` (choice, int range, float range with ``step``); None
    when it has none (a continuous range) or more than :data:`MAX_POINTS`."""
    if spec.choice is not None:
        return list(spec.choice)
    low, high = spec.bounds
    if spec.int_ is not None and not spec.log:
        step = int(spec.step or 1)
        count = (int(high) - int(low)) // step + 1
        return list(range(int(low), int(high) + 1, step)) if count <= MAX_POINTS else None
    if spec.float_ is not None and spec.step is not None:
        count = math.floor((high - low) / spec.step + 1e-9) + 1
        if count > MAX_POINTS:
            return None
        return [round(low + i * spec.step, 12) for i in range(count)]
    return None


@SAMPLERS.register
class GridSampler(SamplerConfig):
    """Each grid point once, in an order shuffled by ``seed``. Every parameter needs finite
    values, and ``num_samples`` must not exceed the number of points."""

    kind: Literal["grid"] = "grid"

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        grid = {name: grid_values(spec) for name, spec in space.items()}
        return optuna.samplers.GridSampler(grid, seed=self.seed)  # type: ignore[arg-type]

    def space_problems(
        self, space: dict[str, ParamSpec], num_samples: int
    ) -> list[tuple[tuple[str, ...], str, Any]]:
        out: list[tuple[tuple[str, ...], str, Any]] = []
        points = 1
        for name, spec in space.items():
            values = grid_values(spec)
            if values is None:
                bounds = list(spec.bounds)
                out.append(
                    (
                        ("space", name),
                        "grid needs finite values: use 'choice', an int range, or a float "
                        f"range with 'step' (at most {MAX_POINTS} points)",
                        bounds,
                    )
                )
                continue
            if spec.when is not None:
                # GridSampler enumerates every key in every trial: an inactive branch's
                # values would make the same configuration run once per value
                out.append(
                    (
                        ("space", name, "when"),
                        "grid cannot search a conditional parameter (its values would "
                        "repeat the same trial); use tpe or random",
                        spec.when,
                    )
                )
            points *= len(values)
        if not out and num_samples > points:
            out.append(
                (
                    ("sweep", "num_samples"),
                    f"grid has {points} points; more samples would repeat them "
                    f"(set num_samples <= {points})",
                    num_samples,
                )
            )
        return out

    def start_point_problem(
        self, space: dict[str, ParamSpec], point: dict[str, Any]
    ) -> str | None:
        # Optuna's GridSampler only takes enqueued trials that name a grid point
        missing = [k for k in space if k not in point]
        if missing:
            return f"grid needs every space key in a start point; missing {missing}"
        off = [
            k for k, v in point.items() if k in space and v not in (grid_values(space[k]) or [])
        ]
        return f"not a grid point: {off} off the grid" if off else None

"""Search without training: a sampler proposes, the nearest recorded configuration answers.

In the spirit of Syne Tune's simulator backend and tabular benchmarks (LCBench, YAHPO): a
table of full learning curves recorded once for many configurations of a real task stands
in for training. Each suggestion of the sampler (this project's :class:`SweepSearch`, with
the sweep's space, start points and divergence wiring) is answered by the recorded curve
whose configuration is nearest (:func:`nearest`), replayed report by report through the
scheduler and divergence rules (:func:`orchestrator.replay.simulate.replay`), and its
reports go back to the sampler as a live trial's would. Compute is counted in reports
(epochs); a run proposes trials until its compute budget is spent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.models import ParamSpec, SamplerConfig, SweepConfig
from orchestrator.config.values import parse_logged
from orchestrator.replay.curves import Curve
from orchestrator.replay.simulate import Outcome, Policy, replay
from orchestrator.reserved import STOP_REASON


@dataclass
class Table:
    """Recorded curves with their configurations parsed against ``space``."""

    space: dict[str, ParamSpec]
    curves: list[Curve]
    configs: list[dict[str, Any]]

    @classmethod
    def of(cls, curves: list[Curve], space: dict[str, ParamSpec]) -> Table:
        configs = [
            {k: parse_logged(space[k], v) for k, v in c.params.items() if k in space}
            for c in curves
        ]
        return cls(dict(space), list(curves), configs)

    def best(self, metric: str, mode: str) -> tuple[float, float]:
        """``(best, worst)`` finite value of ``metric`` over every report in the table."""
        values = [
            float(r[metric])
            for c in self.curves
            for r in c.history
            if isinstance(r.get(metric), int | float) and math.isfinite(r[metric])
        ]
        if not values:
            raise ValueError(f"no finite {metric} in the table")
        return (max(values), min(values)) if mode == "max" else (min(values), max(values))


def coordinate(spec: ParamSpec, value: Any) -> float | str:
    """A number in [0, 1] (log scale where the range is) or, for a choice, the value."""
    if spec.choice is not None:
        return repr(value)
    low, high = spec.bounds
    if spec.log:
        low, high, value = math.log(low), math.log(high), math.log(float(value))
    return (float(value) - low) / (high - low)


def distance(space: dict[str, ParamSpec], a: dict[str, Any], b: dict[str, Any]) -> float:
    """Euclidean distance in normalised coordinates; a differing choice, or a key present in
    one configuration only (an inactive branch), counts as 1 on its axis."""
    total = 0.0
    for key, spec in space.items():
        if (key in a) != (key in b):
            total += 1.0
        elif key in a:
            x, y = coordinate(spec, a[key]), coordinate(spec, b[key])
            if isinstance(x, str) or isinstance(y, str):
                total += 0.0 if x == y else 1.0
            else:
                total += (x - y) ** 2
    return math.sqrt(total)


def nearest(table: Table, config: dict[str, Any]) -> int:
    """Index of the recorded configuration nearest to ``config`` (lowest index on ties)."""
    best, best_d = 0, math.inf
    for i, recorded in enumerate(table.configs):
        d = distance(table.space, config, recorded)
        if d < best_d:
            best, best_d = i, d
    return best


@dataclass
class SearchRun:
    """One simulated sweep: after each trial ended, the compute spent and the best value."""

    sampler: str
    policy: str
    seed: int
    compute: list[int] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    trials: int = 0
    table_rows: list[int] = field(default_factory=list)

    def best_at(self, compute: float, mode: str) -> float | None:
        """The best value known once ``compute`` reports were spent (None before any)."""
        out = None
        for c, b in zip(self.compute, self.best, strict=True):
            if c > compute:
                break
            out = b
        return out


class _Driver:
    """Feeds the replay loop from the sampler and tells the sampler what happened."""

    def __init__(
        self, table: Table, search: Any, metric: str, mode: str, budget: int, run: SearchRun
    ) -> None:
        self.table, self.search, self.metric, self.mode = table, search, metric, mode
        self.budget, self.run = budget, run
        self.spent = 0
        self.last: dict[str, dict[str, Any]] = {}
        self.best: float | None = None

    def curves(self) -> Iterator[Curve]:
        n = 0
        while self.spent < self.budget:
            tid = f"t{n:05d}"
            params = self.search.suggest(tid)
            sampled = {k: v for k, v in params.items() if k in self.table.space}
            row = nearest(self.table, sampled)
            self.run.table_rows.append(row)
            recorded = self.table.curves[row]
            n += 1
            yield Curve(trial=tid, history=recorded.history, params=sampled)

    def on_report(self, curve: Curve, result: dict[str, Any]) -> None:
        self.spent += 1
        self.last[curve.trial] = result
        self.search.on_trial_result(curve.trial, result)

    def on_end(self, curve: Curve, outcome: Outcome) -> None:
        result = dict(self.last.pop(curve.trial))
        if outcome.stopped_by == "rules":
            result[STOP_REASON] = outcome.reason
        self.search.on_trial_complete(curve.trial, result)
        value = result.get(self.metric)
        if (
            outcome.stopped_by != "rules"
            and isinstance(value, int | float)
            and math.isfinite(value)
            and (
                self.best is None
                or (value > self.best if self.mode == "max" else value < self.best)
            )
        ):
            self.best = float(value)
        self.run.trials += 1
        if self.best is not None:
            self.run.compute.append(self.spent)
            self.run.best.append(self.best)


def simulate(
    table: Table,
    config: SweepConfig,
    sampler: SamplerConfig,
    policy: Policy,
    *,
    budget: int,
    concurrency: int = 1,
) -> SearchRun:
    """One sweep of ``config``'s space and objective with ``sampler`` and ``policy`` over
    ``table``, until ``budget`` reports are spent."""
    from orchestrator.search_space.space import SearchSpace
    from orchestrator.tuning.searcher import SweepSearch

    metric, mode = config.primary.metric, config.primary.mode
    search = SweepSearch(
        space=SearchSpace(config),
        metric=metric,
        mode=mode,
        sampler=sampler.build(concurrent=concurrency > 1, space=dict(config.space)),
        start_from=config.sweep.start_from,
        divergence_as=config.sweep.divergence_as,
        reads_constraints=sampler.reads_constraints,
    )
    run = SearchRun(sampler=sampler.kind, policy=policy.name, seed=sampler.seed)
    driver = _Driver(table, search, metric, mode, budget, run)
    replay(
        driver.curves(),
        policy,
        metric=metric,
        mode=mode,
        concurrency=concurrency,
        max_t=max(len(c.history) for c in table.curves),
        listener=driver,
    )
    return run


@dataclass
class Band:
    """Mean regret over seeds at each compute point, with a 95% confidence interval."""

    compute: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]


def regret_band(
    runs: list[SearchRun], best: float, worst: float, mode: str, grid: list[float]
) -> Band:
    """Regret ``|table best - best so far|`` of ``runs`` at each ``grid`` compute.

    Before a run's first finished trial its regret is ``|best - worst|`` (nothing known).
    The interval is mean ± t(0.975, n-1) x standard error over the runs (seeds).
    """
    from scipy import stats

    mean, low, high = [], [], []
    for c in grid:
        regrets = []
        for run in runs:
            known = run.best_at(c, mode)
            regrets.append(abs(best - (worst if known is None else known)))
        n = len(regrets)
        m = sum(regrets) / n
        if n > 1:
            sd = math.sqrt(sum((r - m) ** 2 for r in regrets) / (n - 1))
            half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        else:
            half = 0.0
        mean.append(m)
        low.append(max(0.0, m - half))
        high.append(m + half)
    return Band(list(grid), mean, low, high)

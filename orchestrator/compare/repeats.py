"""Seed repeats: configurations re-run with other seeds, ranked by mean objective with a
95% confidence interval.

Contract (written by ``orchestrate sweep --repeat-top K --seeds N``): extra child runs tagged
``orch.phase=repeat``, ``orch.repeat_of=<original trial's run id>``, ``orch.seed=<seed>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.compare.records import ObjectiveSpec, Trial
from orchestrator.reserved import REPEAT_OF, SEED


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values and its two-sided confidence interval (None when n < 2)."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean ± t(1-(1-level)/2, n-1) · s/√n with s the sample standard deviation (n-1):
    the t-distribution because a handful of seeds says little about the spread."""
    n = len(values)
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return Interval(n, mean, None, None, None)
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(1 - (1 - level) / 2, n - 1)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class RepeatGroup:
    """One configuration: its original trial and the runs that repeated it."""

    original: Trial
    runs: list[Trial]  # every run with a finite objective, the original first
    seeds: list[str]
    values: list[float]
    interval: Interval


def repeat_groups(
    trials: Sequence[Trial], repeats: Sequence[Trial], objective: ObjectiveSpec
) -> list[RepeatGroup]:
    """Repeated configurations ranked by mean objective (best first).

    The original trial counts as one more seed unless a repeat used its seed (``train.seed``)
    again, so no seed is counted twice. Repeats whose original is not among ``trials`` are
    grouped under their first repeat.
    """
    by_id = {t.run_id: t for t in trials}
    grouped: dict[str, list[Trial]] = {}
    for r in repeats:
        grouped.setdefault(r.tags.get(REPEAT_OF, ""), []).append(r)
    groups = []
    for original_id, runs in grouped.items():
        original = by_id.get(original_id)
        members = list(runs)
        if original is not None:
            repeat_seeds = {r.tags.get(SEED) for r in runs}
            if original.params.get("train.seed") not in repeat_seeds:
                members.insert(0, original)
        scored = [m for m in members if m.objective(objective.metric) is not None]
        if not scored:
            continue
        values = [m.objective(objective.metric) or 0.0 for m in scored]
        groups.append(
            RepeatGroup(
                original=original or runs[0],
                runs=scored,
                seeds=[_seed(m) for m in scored],
                values=values,
                interval=t_interval(values),
            )
        )
    sign = -1.0 if objective.mode == "max" else 1.0
    groups.sort(key=lambda g: sign * g.interval.mean)
    return groups


def _seed(run: Trial) -> str:
    return run.tags.get(SEED) or run.params.get("train.seed", "?")

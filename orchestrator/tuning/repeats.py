"""Seed repeats: the best configurations of a finished search, trained again with new seeds.

The search ranks trials by one seed each, and on a small budget the gap between the top
few is often smaller than the seed-to-seed spread. ``final: {top: K, seeds: N}`` (or
``orchestrate sweep --repeat-top K --seeds N``) re-runs the top K configurations with N new
values of ``train.seed`` (model init, data order) as extra child runs of the same MLflow
parent, tagged ``orch.phase=repeat``, ``orch.repeat_of=<original run id>``,
``orch.seed=<seed>``; the summary (and ``orchestrate compare``) ranks each configuration
by its mean over the original and the repeats, with a t-based 95% confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.models import SweepConfig
from orchestrator.reserved import PHASE, REPEAT_OF, REPEAT_TRIAL, SEED
from orchestrator.search_space.space import SearchSpace
from orchestrator.tuning.summary import TrialRow

#: new seeds are the original's plus multiples of this, so they never meet a searched seed
SEED_STRIDE = 1000


@dataclass
class RepeatResult:
    """One repeated configuration: its values over seeds and their mean and 95% CI."""

    trial: str
    run_id: str | None
    params: dict[str, Any]
    seeds: list[int]
    values: list[float]
    mean: float
    low: float | None
    high: float | None
    failed: list[int] = field(default_factory=list)  # seeds with no finite objective


def ranked(rows: list[TrialRow], metric: str, mode: str) -> list[TrialRow]:
    """Completed trials with a finite ``metric``, best first."""
    done = [
        r
        for r in rows
        if r.status == "done"
        and not r.stop_reason
        and math.isfinite(r.metrics.get(metric, math.nan))
    ]
    return sorted(done, key=lambda r: r.metrics[metric], reverse=mode == "max")


def repeat_configs(config: SweepConfig, rows: list[TrialRow]) -> list[dict[str, Any]]:
    """The trial configs of the repeat phase: each top configuration once per new seed."""
    assert config.final is not None
    space = SearchSpace(config)
    out = []
    for row in ranked(rows, config.primary.metric, config.primary.mode)[: config.final.top]:
        base = int(row.params.get("train.seed", config.train.seed))
        for i in range(1, config.final.seeds + 1):
            seed = base + i * SEED_STRIDE
            params = {**row.params, "train.seed": seed}
            params.update(space.derived(params))
            params.update(
                {PHASE: "repeat", REPEAT_OF: row.run_id or "", SEED: seed, REPEAT_TRIAL: row.trial}
            )
            out.append(params)
    return out


def summarise(
    config: SweepConfig, rows: list[TrialRow], results: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[RepeatResult]:
    """Group repeat results ``(trial config, last metrics)`` by original trial; rank by mean.

    The original counts as one more seed: it is a draw of the same configuration (the
    interval is then a little optimistic, as the original was picked for being best).
    """
    from orchestrator.compare.repeats import t_interval

    metric, mode = config.primary.metric, config.primary.mode
    by_trial = {r.trial: r for r in rows}
    grouped: dict[str, list[tuple[int, float]]] = {}
    for cfg, metrics in results:
        value = metrics.get(metric)
        grouped.setdefault(str(cfg[REPEAT_TRIAL]), []).append(
            (int(cfg[SEED]), float(value) if isinstance(value, int | float) else math.nan)
        )
    out = []
    for trial, draws in grouped.items():
        original = by_trial[trial]
        seeds = [int(original.params.get("train.seed", config.train.seed))]
        values = [original.metrics[metric]]
        failed = []
        for seed, value in sorted(draws):
            if math.isfinite(value):
                seeds.append(seed)
                values.append(value)
            else:
                failed.append(seed)
        ci = t_interval(values)
        out.append(
            RepeatResult(
                trial, original.run_id, original.params, seeds, values, ci.mean, ci.low, ci.high,
                failed,
            )
        )  # fmt: skip
    out.sort(key=lambda r: r.mean, reverse=mode == "max")
    return out


def render_repeats(results: list[RepeatResult], metric: str, best_trial: str | None = None) -> str:
    """The summary's "Seed repeats" block."""
    if not results:
        return ""
    lines = [f"Seed repeats, ranked by mean {metric} (95% CI over seeds):"]
    for r in results:
        ci = f"[{r.low:.4f}, {r.high:.4f}]" if r.low is not None and r.high is not None else "-"
        seeds = ", ".join(str(s) for s in r.seeds)
        lines.append(f"    {r.trial}: {r.mean:.4f} {ci}  n={len(r.values)} (seeds {seeds})")
        if r.failed:
            lines.append(f"        no finite {metric} with seeds {r.failed}")
    if best_trial and results[0].trial != best_trial and results[0].run_id:
        lines.append(
            f"{results[0].trial} has the best mean, not the search's best {best_trial}; make "
            f"its model the registered 'best' with: orchestrate compare --promote "
            f"{results[0].run_id}"
        )
    return "\n".join(lines) + "\n"

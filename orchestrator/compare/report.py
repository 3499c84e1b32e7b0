"""What the report shows, decided once for both renderings (HTML and Markdown): ranking,
the trials whose curves are drawn, importances, Pareto front, seed repeats, a chosen pair."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from orchestrator.compare.pareto import pareto_trials
from orchestrator.compare.records import SweepData, Trial
from orchestrator.compare.repeats import RepeatGroup, repeat_groups
from orchestrator.compare.schedules import Schedule, in_force_keys
from orchestrator.compare.table import Table, rank, trial_table

#: at most this many stopped trials get curves (divergence stops before scheduler cuts)
MAX_STOPPED_CURVES = 8

Curves = dict[str, list[tuple[int, float]]]


@dataclass
class Report:
    sweep: SweepData
    params: list[str]  # the searched parameters, in the space's order
    ranked: list[Trial]  # by the first objective, best first
    table: Table
    top: list[Trial]
    stopped: list[Trial]
    front: list[Trial]  # Pareto front (multi-objective sweeps only)
    repeats: list[RepeatGroup]
    importances: dict[str, dict[str, float]]
    curve_metrics: list[str]
    #: run id -> metric -> [(step, value)] for the top, stopped and paired runs
    curves: dict[str, Curves] = field(default_factory=dict)
    pair: tuple[Trial, Trial] | None = None
    #: a population sweep's surviving members: the values each trained with, by epoch
    schedules: list[Schedule] = field(default_factory=list)


def scheduled_trials(report: Report) -> list[Trial]:
    """The members whose schedules the report shows: trials of a population sweep (they
    have ``hp/`` metrics) that were not stopped, in ranking order."""
    return [t for t in report.ranked if in_force_keys(t) and not t.stop_reason]


def stopped_trials(trials: list[Trial], limit: int = MAX_STOPPED_CURVES) -> list[Trial]:
    """Trials stopped early that have curves: rule stops first (they are the interesting
    ones), then scheduler cuts, at most ``limit``. Skipped trials never trained."""
    stopped = [t for t in trials if t.stop_reason not in ("", "skipped")]
    stopped.sort(key=lambda t: t.stop_reason == "scheduler")
    return stopped[:limit]


def build_report(
    sweep: SweepData,
    top_k: int,
    importances: dict[str, dict[str, float]],
    curve_metrics: list[str],
    pair: tuple[Trial, Trial] | None = None,
) -> Report:
    """Everything but the curves (fetched afterwards for :func:`curve_runs` only)."""
    primary = sweep.objectives[0]
    ranked = rank(sweep.trials, primary)
    params = list(sweep.space)
    scored = [t for t in ranked if t.objective(primary.metric) is not None]
    top = scored[:top_k]
    return Report(
        sweep=sweep,
        params=params,
        ranked=ranked,
        table=trial_table(ranked, sweep.objectives, params),
        top=top,
        stopped=[t for t in stopped_trials(ranked) if t not in top],
        front=pareto_trials(sweep.trials, sweep.objectives) if len(sweep.objectives) > 1 else [],
        repeats=repeat_groups(sweep.trials, sweep.repeats, primary),
        importances=importances,
        curve_metrics=curve_metrics,
        pair=pair,
    )


def differing_params(
    a: Trial, b: Trial, searched: Collection[str]
) -> tuple[list[tuple[str, str, str]], int]:
    """``([(name, a's value, b's value), ...], how many are equal)`` over both runs'
    logged parameters. A searched parameter that was inactive in a run is marked so: MLflow
    holds the file's fixed value for it, which the run never used."""

    def shown(t: Trial, name: str) -> str:
        value = t.params.get(name, "–")
        inactive = t.sampled is not None and name in searched and name not in t.sampled
        return f"{value} (inactive)" if inactive else value

    rows = []
    names = sorted(set(a.params) | set(b.params))
    for name in names:
        va, vb = shown(a, name), shown(b, name)
        if va != vb:
            rows.append((name, va, vb))
    return rows, len(names) - len(rows)


def curve_runs(report: Report) -> list[Trial]:
    """The runs whose metric histories the report draws, each once."""
    out: dict[str, Trial] = {}
    for t in [*report.top, *report.stopped, *(report.pair or ())]:
        out.setdefault(t.run_id, t)
    return list(out.values())

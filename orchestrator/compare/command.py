"""``orchestrate compare``: read the sweep, decide what to show, write HTML and Markdown.

Imported only when the command runs; MLflow and Optuna load further down, on first use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from orchestrator.compare.args import DEFAULT_REASON, DEFAULT_TOP
from orchestrator.compare.html import render_html
from orchestrator.compare.importance import param_importances
from orchestrator.compare.load import (
    curve_metrics,
    find_parent,
    get_run,
    histories,
    load_sweep,
    open_client,
    to_trial,
)
from orchestrator.compare.markdown import render_markdown
from orchestrator.compare.promote import promote
from orchestrator.compare.records import SweepData, Trial
from orchestrator.compare.report import build_report, curve_runs, scheduled_trials
from orchestrator.compare.schedules import in_force_keys, run_names, schedule_of
from orchestrator.errors import CompareError
from orchestrator.tracking.uri import resolve_tracking_uri

REPORT_HTML = "report.html"
REPORT_MD = "report.md"


@dataclass
class CompareOptions:
    experiment: str | None = None
    sweep: str | None = None
    tracking_uri: str | None = None
    out: str | None = None
    top: int = DEFAULT_TOP
    runs: tuple[str, str] | None = None
    promote: str | None = None
    reason: str = DEFAULT_REASON


def run_compare(opts: CompareOptions, out: TextIO | None = None) -> Path | None:
    """Write the report (returns its folder), or promote a run (returns None)."""
    out = out or sys.stdout
    uri = resolve_tracking_uri(opts.tracking_uri)
    client = open_client(uri)
    if opts.promote:
        p = promote(client, opts.promote, opts.reason)
        how = "registered as version" if p.registered_now else "already version"
        before = f" (was version {p.previous})" if p.previous else ""
        out.write(
            f"run {p.run_id}: {how} {p.version} of model {p.model!r}; alias 'best' -> "
            f"version {p.version}{before}\n"
        )
        return None
    if opts.experiment or opts.sweep:
        parent = find_parent(client, opts.experiment, opts.sweep)
    elif opts.runs:
        try:  # the sweep of run A
            parent = find_parent(client, None, opts.runs[0])
        except CompareError as exc:
            raise CompareError(
                f"{exc}; without --experiment or --sweep, --runs A must be a run id"
            ) from None
    else:
        raise CompareError("say which sweep: --experiment NAME or --sweep RUN_ID")
    sweep = load_sweep(client, parent)
    pair = None
    if opts.runs:
        pair = (_resolve(client, sweep, opts.runs[0]), _resolve(client, sweep, opts.runs[1]))
    report = build_report(
        sweep,
        opts.top,
        param_importances(sweep.trials, sweep.objectives, sweep.space),
        curve_metrics(sweep.trials),
        pair,
    )
    for t in curve_runs(report):
        report.curves[t.run_id] = histories(client, t.run_id, curve_metrics([t]))
    names = run_names(sweep.trials)
    report.schedules = [
        schedule_of(t, histories(client, t.run_id, in_force_keys(t)), names)
        for t in scheduled_trials(report)
    ]

    folder = Path(opts.out or f"compare-{sweep.name}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    (folder / REPORT_MD).write_text(render_markdown(report, REPORT_HTML), encoding="utf-8")
    out.write(
        f"Sweep {sweep.name!r} (run {sweep.parent_run_id}): {len(sweep.trials)} trials"
        + (f", {len(sweep.repeats)} seed repeats" if sweep.repeats else "")
        + f"\nwrote {folder / REPORT_HTML}\nwrote {folder / REPORT_MD}\n"
    )
    return folder


def _resolve(client: Any, sweep: SweepData, ref: str) -> Trial:
    """A run of the sweep by trial name, else any run by id."""
    for t in [*sweep.trials, *sweep.repeats]:
        if ref in (t.name, t.run_id):
            return t
    try:
        return to_trial(get_run(client, ref))
    except CompareError:
        raise CompareError(
            f"--runs: {ref!r} is neither a trial of sweep {sweep.name!r} "
            f"(trial-1 ... trial-{len(sweep.trials)}) nor an MLflow run id"
        ) from None

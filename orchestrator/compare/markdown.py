"""The Markdown summary: what a pull request or a chat message can carry of the report."""

from __future__ import annotations

from orchestrator.compare.records import Trial
from orchestrator.compare.report import Report, differing_params
from orchestrator.compare.schedules import describe
from orchestrator.compare.table import fmt, status_of


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _params(t: Trial, names: list[str]) -> str:
    if t.sampled is None:
        return ", ".join(f"{n}={t.params.get(n, '–')}" for n in names)
    return ", ".join(f"{n}={fmt_value(t.sampled[n])}" for n in names if n in t.sampled)


def fmt_value(v: object) -> str:
    return fmt(float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def render_markdown(report: Report, html_name: str = "report.html") -> str:
    s = report.sweep
    counts: dict[str, int] = {}
    for t in s.trials:
        counts[status_of(t)] = counts.get(status_of(t), 0) + 1
    objs = ", ".join(f"`{o.metric}` ({o.mode})" for o in s.objectives)
    lines = [
        f"# Sweep {s.name}",
        "",
        f"Experiment `{s.experiment}`, parent run `{s.parent_run_id}`, objective {objs}; "
        f"{len(s.trials)} trials ("
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + f"). Full report with curves and plots: [{html_name}]({html_name}).",
        "",
        f"## Top {len(report.top)}" if report.top else "## Top trials",
        "",
    ]
    header = ["rank", "trial", *[o.metric for o in s.objectives], "eff. batch", "wall s"]
    rows = [
        [
            str(i + 1),
            t.name,
            *[fmt(t.objective(o.metric)) for o in s.objectives],
            fmt(None if t.effective_batch is None else float(t.effective_batch)),
            fmt(t.wall_s),
            _params(t, report.params),
        ]
        for i, t in enumerate(report.top)
    ]
    if rows:
        lines += _table([*header, "parameters"], rows)
    else:
        lines.append(f"No trial has a finite `{s.objectives[0].metric}`.")
    if report.front:
        lines += ["", "## Pareto front", ""]
        lines += _table(
            ["trial", *[o.metric for o in s.objectives], "run"],
            [
                [t.name, *[fmt(t.objective(o.metric)) for o in s.objectives], f"`{t.run_id}`"]
                for t in report.front
            ],
        )
    lines += ["", "## Parameter importance (PED-ANOVA)", ""]
    if report.importances:
        metrics = list(report.importances)
        names = sorted(
            {p for scores in report.importances.values() for p in scores},
            key=lambda p: -report.importances[metrics[0]].get(p, 0.0),
        )
        lines += _table(
            ["parameter", *metrics],
            [[p, *[f"{report.importances[m].get(p, 0.0):.3f}" for m in metrics]] for p in names],
        )
    else:
        lines.append("Not computed: fewer than 4 trials with a finite objective.")
    stopped = [t for t in report.ranked if t.stop_reason]
    if stopped:
        lines += ["", "## Stopped early", ""]
        lines += _table(
            ["trial", "reason", "detail"],
            [[t.name, t.stop_reason, t.stop_detail or "–"] for t in stopped],
        )
    if report.schedules:
        lines += ["", "## Population schedules (values in force, by epoch)", ""]
        lines += _table(
            ["trial", "schedule"],
            [
                [sch.trial.name, "; ".join(describe(span) for span in sch.spans) or "–"]
                for sch in report.schedules
            ],
        )
    if report.repeats:
        metric = s.objectives[0].metric
        lines += ["", f"## Seed repeats (mean `{metric}`, 95% t-interval)", ""]
        lines += _table(
            ["rank", "configuration", "runs", "mean", "95% CI", "seeds"],
            [
                [
                    str(i + 1),
                    g.original.name,
                    str(g.interval.n),
                    fmt(g.interval.mean),
                    f"[{fmt(g.interval.low)}, {fmt(g.interval.high)}]"
                    if g.interval.low is not None
                    else "– (one run)",
                    ", ".join(g.seeds),
                ]
                for i, g in enumerate(report.repeats)
            ],
        )
    if report.pair:
        a, b = report.pair
        diff = [list(row) for row in differing_params(a, b, report.params)[0]]
        lines += ["", f"## {a.name} vs {b.name}: parameters that differ", ""]
        lines += _table(["parameter", f"A: {a.name}", f"B: {b.name}"], diff)
    return "\n".join(lines) + "\n"

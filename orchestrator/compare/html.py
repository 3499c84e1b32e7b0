"""The self-contained HTML report: inline CSS, inline SVG charts and a few lines of inline
JavaScript that sort the trial table; no network access needed to open it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from orchestrator.compare.plots import (
    Axis,
    Series,
    bar_chart,
    interval_chart,
    line_chart,
    parallel_coordinates,
    scatter,
)
from orchestrator.compare.records import Trial
from orchestrator.compare.report import Report, differing_params
from orchestrator.compare.schedules import describe
from orchestrator.compare.space import parse_space
from orchestrator.compare.svg import color, esc
from orchestrator.compare.table import Table, fmt, status_of

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 24px 32px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px; }
.meta { color: #555; font-size: 13px; } code { font-size: 13px; }
nav a { margin-right: 14px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 5px 9px; text-align: right; }
th, td { white-space: nowrap; }
th { background: #f4f6f8; position: sticky; top: 0; cursor: pointer; user-select: none; }
th:hover { background: #e6ebf0; }
th[aria-sort=ascending]::after { content: " ▲"; }
th[aria-sort=descending]::after { content: " ▼"; }
td.text, th.text { text-align: left; }
tr.top td:first-child { border-left: 4px solid #0072B2; }
tr.front td:first-child { border-left: 4px solid #D55E00; }
td.diff { background: #fff4d6; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 8px 0 12px; font-size: 13.5px; }
.legend svg { vertical-align: middle; margin-right: 5px; }
.note { color: #555; font-size: 13.5px; max-width: 900px; }
"""

#: sorts the table whose header was clicked: numbers numerically, missing values last in
#: both directions, a second click reverses; aria-sort marks the state for readers and tests
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var desc = th.getAttribute('aria-sort') === 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var keyed = rows.map(function (row, i) {
        var cell = row.cells[col];
        var raw = cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : null;
        var num = raw !== null && raw !== '' && !isNaN(Number(raw)) ? Number(raw) : null;
        return { row: row, raw: raw, num: num, i: i };
      });
      keyed.sort(function (a, b) {
        if (a.raw === null || b.raw === null) {
          return (a.raw === null) - (b.raw === null) || a.i - b.i;
        }
        var c;
        if (a.num !== null && b.num !== null) { c = a.num - b.num; }
        else if (a.num !== null) { c = -1; } else if (b.num !== null) { c = 1; }
        else { c = a.raw.localeCompare(b.raw); }
        return (desc ? -c : c) || a.i - b.i;
      });
      keyed.forEach(function (k) { body.appendChild(k.row); });
    });
  });
});
"""


def render_html(report: Report) -> str:
    """The whole page."""
    s = report.sweep
    sections = [
        _header(report),
        _trials(report),
        _curves(report),
        _parallel(report),
        _importance(report),
    ]
    if report.front:
        sections.append(_pareto(report))
    if report.schedules:
        sections.append(_schedules(report))
    if report.repeats:
        sections.append(_repeats(report))
    if report.pair:
        sections.append(_pair(report))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(s.name)}: sweep comparison</title><style>{CSS}</style></head><body>"
        + "\n".join(sections)
        + f"<script>{SORT_JS}</script></body></html>\n"
    )


def _header(report: Report) -> str:
    s = report.sweep
    counts: dict[str, int] = {}
    for t in s.trials:
        counts[status_of(t)] = counts.get(status_of(t), 0) + 1
    objs = ", ".join(f"<code>{esc(o.metric)}</code> ({o.mode})" for o in s.objectives)
    best = report.ranked[0] if report.top else None
    best_text = (
        f"Best by <code>{esc(s.objectives[0].metric)}</code>: <b>{esc(best.name)}</b> "
        f"= {fmt(best.objective(s.objectives[0].metric))} (run <code>{esc(best.run_id)}</code>)."
        if best
        else "No trial has a finite objective."
    )
    links = [("trials", "Trials"), ("curves", "Curves"), ("parallel", "Parameters")]
    links.append(("importance", "Importance"))
    if report.front:
        links.append(("pareto", "Pareto front"))
    if report.schedules:
        links.append(("schedules", "Schedules"))
    if report.repeats:
        links.append(("repeats", "Seed repeats"))
    if report.pair:
        links.append(("pair", "Side by side"))
    return (
        f"<header><h1>Sweep {esc(s.name)}</h1>"
        f"<p class='meta'>experiment <code>{esc(s.experiment)}</code> · parent run "
        f"<code>{esc(s.parent_run_id)}</code> · {esc(s.tracking_uri)} · generated "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>"
        f"<p>Objective: {objs}. {len(s.trials)} trials ("
        + ", ".join(f"{n} {esc(k)}" for k, n in sorted(counts.items()))
        + f"). {best_text}</p><nav>"
        + "".join(f"<a href='#{i}'>{t}</a>" for i, t in links)
        + "</nav></header>"
    )


def table_html(table: Table, classes: Sequence[str] = (), table_id: str = "") -> str:
    """A sortable table; ``classes`` mark rows (``top``, ``front``)."""
    numeric = [
        any(isinstance(r[i].sort, float) for r in table.rows) for i in range(len(table.columns))
    ]
    head = "".join(
        f"<th class='{'' if numeric[i] else 'text'}' title='click to sort'>{esc(c)}</th>"
        for i, c in enumerate(table.columns)
    )
    body = []
    for k, row in enumerate(table.rows):
        cells = []
        for i, cell in enumerate(row):
            sort = "" if cell.sort is None else f" data-sort='{esc(cell.sort)}'"
            title = f" title='{esc(cell.title)}'" if cell.title else ""
            cls = "" if numeric[i] else " class='text'"
            cells.append(f"<td{cls}{sort}{title}>{esc(cell.text)}</td>")
        row_cls = f" class='{classes[k]}'" if k < len(classes) and classes[k] else ""
        body.append(f"<tr{row_cls} data-run='{esc(table.run_ids[k])}'>" + "".join(cells) + "</tr>")
    return (
        f"<div class='scroll'><table class='sortable' id='{table_id}'><thead><tr>{head}</tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _trials(report: Report) -> str:
    top = {t.run_id for t in report.top}
    front = {t.run_id for t in report.front}
    classes = [
        "front" if rid in front else "top" if rid in top else "" for rid in report.table.run_ids
    ]
    mark = (
        "an orange edge marks the Pareto front"
        if report.front
        else f"a blue edge marks the top {len(report.top)}"
    )
    return (
        "<section id='trials'><h2>Trials</h2><p class='note'>Ranked by "
        f"<code>{esc(report.sweep.objectives[0].metric)}</code>; click a column header to "
        f"sort; {mark}. <code>n/a</code>: a conditional parameter that was inactive. Hover "
        "a stop reason for its detail.</p>"
        + table_html(report.table, classes, "trials-table")
        + "</section>"
    )


def _trial_styles(report: Report) -> dict[str, tuple[str, bool, str]]:
    """run id -> (colour, dashed, legend text): top trials solid, stopped ones dashed."""
    metric = report.sweep.objectives[0].metric
    out: dict[str, tuple[str, bool, str]] = {}
    for i, t in enumerate(report.top):
        out[t.run_id] = (color(i), False, f"{t.name} ({fmt(t.objective(metric))})")
    for j, t in enumerate(report.stopped):
        out[t.run_id] = (color(len(report.top) + j), True, f"{t.name}: {t.stop_reason}")
    return out


def _legend(items: Sequence[tuple[str, bool, str]]) -> str:
    parts = []
    for c, dashed, label in items:
        dash = " stroke-dasharray='6 4'" if dashed else ""
        parts.append(
            "<span><svg width='30' height='10'><line x1='0' y1='5' x2='30' y2='5' "
            f"stroke='{c}' stroke-width='3'{dash}/></svg>{esc(label)}</span>"
        )
    return "<div class='legend'>" + "".join(parts) + "</div>"


def _curves(report: Report) -> str:
    styles = _trial_styles(report)
    runs = [*report.top, *report.stopped]
    charts = [_metric_chart(report, metric, runs, styles) for metric in report.curve_metrics]
    return (
        f"<section id='curves'><h2>Curves</h2><p class='note'>The top {len(report.top)} "
        + (
            f"trials (solid) and {len(report.stopped)} stopped early (dashed, × where "
            "they stopped)"
            if report.stopped
            else "trials"
        )
        + ", per loss "
        "component and validation metric, over optimizer steps. Weighted losses "
        "(<code>train/loss_*</code>) are not comparable across trials that searched the "
        "weights; validation metrics are.</p>"
        + _legend(list(styles.values()))
        + "<div class='grid'>"
        + "".join(charts)
        + "</div></section>"
    )


def _metric_chart(
    report: Report,
    metric: str,
    runs: Sequence[Trial],
    styles: dict[str, tuple[str, bool, str]],
) -> str:
    series = []
    for t in runs:
        points = report.curves.get(t.run_id, {}).get(metric)
        if points:
            c, dashed, _ = styles[t.run_id]
            series.append(Series(t.name, [(float(x), y) for x, y in points], c, dashed))
    return line_chart(metric, series)


def _parallel(report: Report) -> str:
    s = report.sweep
    primary = s.objectives[0]
    axes = []
    for name, spec in parse_space(s.space).items():
        if spec.choice is not None:
            axes.append(Axis(name, choices=tuple(str(c) for c in spec.choice)))
        else:
            low, high = spec.bounds
            axes.append(Axis(name, low=low, high=high, log=spec.log))
    scored = [t for t in s.trials if t.objective(primary.metric) is not None and t.sampled]
    for o in s.objectives:
        vals = [t.objective(o.metric) for t in scored]
        finite = [v for v in vals if v is not None]
        if finite:
            lo, hi = min(finite), max(finite)
            high = hi if hi > lo else lo + 1
            axes.append(Axis(o.metric, low=lo, high=high, reverse=o.mode == "min"))
    lines = []
    for t in scored:
        sampled = t.sampled or {}
        values: list[str | float | None] = [sampled.get(n) for n in s.space]
        values += [t.objective(o.metric) for o in s.objectives]
        lines.append((t.name, values, t.objective(primary.metric) or 0.0))
    return (
        "<section id='parallel'><h2>Parameters vs objective</h2><p class='note'>One line "
        f"per trial with a finite <code>{esc(primary.metric)}</code>, coloured by it (yellow "
        "= best, purple = worst); objective axes point up to better values (a minimised "
        "one is upside down); hover a line for its trial.</p><div class='scroll'>"
        + parallel_coordinates(axes, lines, primary.metric, primary.mode == "max")
        + "</div></section>"
    )


def _importance(report: Report) -> str:
    if not report.importances:
        body = (
            "<p class='note'>Not computed: it needs at least 4 trials with a finite "
            "objective and a searched space.</p>"
        )
    else:
        body = (
            "<div class='grid'>"
            + "".join(
                bar_chart(
                    f"importance for {metric}", sorted(scores.items(), key=lambda kv: -kv[1])
                )
                for metric, scores in report.importances.items()
            )
            + "</div>"
        )
    n = sum(1 for t in report.sweep.trials if t.sampled is not None)
    return (
        "<section id='importance'><h2>Parameter importance</h2><p class='note'>Optuna's "
        "default evaluator (PED-ANOVA) on the trials rebuilt as an Optuna study "
        f"({n} trials): how much each parameter matters to reach the best objective "
        "values. With few trials it is a hint, not a measurement.</p>" + body + "</section>"
    )


def _pareto(report: Report) -> str:
    s = report.sweep
    a, b = s.objectives[0], s.objectives[1]
    front = {t.run_id for t in report.front}
    points = [
        (t.name, t.objective(a.metric) or 0.0, t.objective(b.metric) or 0.0, t.run_id in front)
        for t in s.trials
        if t.objective(a.metric) is not None and t.objective(b.metric) is not None
    ]
    rows = "".join(
        f"<li><b>{esc(t.name)}</b>: "
        + ", ".join(f"{esc(o.metric)} = {fmt(t.objective(o.metric))}" for o in s.objectives)
        + "</li>"
        for t in report.front
    )
    extra = " (first two objectives drawn)" if len(s.objectives) > 2 else ""
    return (
        "<section id='pareto'><h2>Pareto front</h2><p class='note'>Trials no other trial "
        f"beats on every objective at once{extra}; orange.</p>"
        + scatter(f"{a.metric} ({a.mode}) vs {b.metric} ({b.mode})", points, a.metric, b.metric)
        + f"<ul>{rows}</ul></section>"
    )


def _schedules(report: Report) -> str:
    rows = "".join(
        f"<tr><td class='text'>{esc(sch.trial.name)}</td><td class='text'>"
        + "<br>".join(esc(describe(span)) for span in sch.spans)
        + "</td></tr>"
        for sch in report.schedules
    )
    return (
        "<section id='schedules'><h2>Population schedules</h2><p class='note'>The values "
        "each surviving member trained with, by epoch, from its <code>hp/</code> metrics "
        "(its MLflow params are its starting values), and the member it was cloned from "
        "when a span starts from another member's checkpoint.</p>"
        "<table><thead><tr><th class='text'>trial</th><th class='text'>schedule</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


def _repeats(report: Report) -> str:
    metric = report.sweep.objectives[0].metric
    rows = [
        (g.original.name, g.interval.mean, g.interval.low, g.interval.high) for g in report.repeats
    ]
    table = "".join(
        f"<tr><td>{i + 1}</td><td class='text'>{esc(g.original.name)}</td>"
        f"<td>{g.interval.n}</td><td>{fmt(g.interval.mean)}</td>"
        f"<td>{fmt(g.interval.std)}</td><td>"
        + (
            f"[{fmt(g.interval.low)}, {fmt(g.interval.high)}]"
            if g.interval.low is not None
            else "– (one run)"
        )
        + f"</td><td class='text'>{esc(', '.join(g.seeds))}</td></tr>"
        for i, g in enumerate(report.repeats)
    )
    return (
        "<section id='repeats'><h2>Seed repeats</h2><p class='note'>Configurations re-run "
        f"with other seeds, ranked by mean <code>{esc(metric)}</code>; 95% confidence "
        "interval from the t-distribution (mean ± t·s/√n). Overlapping intervals: the "
        "ranking between them is not settled.</p>"
        + interval_chart(f"mean {metric} with 95% CI", rows)
        + "<table><thead><tr><th>rank</th><th class='text'>configuration</th><th>runs</th>"
        "<th>mean</th><th>std</th><th>95% CI</th><th class='text'>seeds</th></tr></thead>"
        f"<tbody>{table}</tbody></table></section>"
    )


def _pair(report: Report) -> str:
    assert report.pair is not None
    a, b = report.pair
    diff, same = differing_params(a, b, report.params)
    rows = [
        f"<tr><td class='text'>{esc(n)}</td><td class='text diff'>{esc(va)}</td>"
        f"<td class='text diff'>{esc(vb)}</td></tr>"
        for n, va, vb in diff
    ]
    metrics = sorted(set(a.metrics) | set(b.metrics))
    finals = "".join(
        f"<tr><td class='text'>{esc(m)}</td><td>{fmt(a.metrics.get(m))}</td>"
        f"<td>{fmt(b.metrics.get(m))}</td></tr>"
        for m in metrics
    )
    styles = {
        a.run_id: (color(0), False, f"A: {a.name}"),
        b.run_id: (color(1), True, f"B: {b.name}"),
    }
    curve_names = sorted(
        {m for t in (a, b) for m in report.curves.get(t.run_id, {})},
        key=lambda m: (not m.startswith("train/"), m),
    )
    charts = "".join(_metric_chart(report, m, [a, b], styles) for m in curve_names)
    head = (
        f"<thead><tr><th class='text'>name</th><th class='text'>A: {esc(a.name)}</th>"
        f"<th class='text'>B: {esc(b.name)}</th></tr></thead>"
    )
    return (
        f"<section id='pair'><h2>Side by side: {esc(a.name)} vs {esc(b.name)}</h2>"
        f"<p class='meta'>A = run <code>{esc(a.run_id)}</code>, B = run "
        f"<code>{esc(b.run_id)}</code></p>"
        f"<h3>Parameters that differ ({len(rows)}; {same} equal)</h3>"
        f"<table class='pair-diff'>{head}<tbody>{''.join(rows)}</tbody></table>"
        f"<h3>Final metrics</h3><table>{head.replace('name', 'metric')}<tbody>{finals}"
        "</tbody></table><h3>Curves</h3>"
        + _legend(list(styles.values()))
        + f"<div class='grid'>{charts}</div></section>"
    )

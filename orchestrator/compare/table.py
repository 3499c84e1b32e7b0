"""The trial table: which columns, each cell's text and sort value, ranking by objective."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.compare.records import ObjectiveSpec, Trial
from orchestrator.reserved import STATUS

#: a cell's sort key: a number, a string, or None (missing, sorted last either way)
SortValue = float | str | None


@dataclass(frozen=True)
class Cell:
    text: str
    sort: SortValue
    title: str = ""  # hover text (e.g. the stop detail)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    run_ids: list[str]


def fmt(value: float | None) -> str:
    """Short, readable numbers: 4 significant digits, scientific only when tiny or huge."""
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.4g}"


def param_cell(raw: str | None) -> Cell:
    """A parameter as MLflow stores it (a string): sorted as a number when it is one."""
    if raw is None:
        return Cell("–", None)
    try:
        number = float(raw)
    except ValueError:
        return Cell(raw, raw)
    return Cell(fmt(number), number) if math.isfinite(number) else Cell(raw, raw)


def status_of(trial: Trial) -> str:
    """``completed``, ``error``, a stop reason, or MLflow's status when the run has no tag."""
    return trial.tags.get(STATUS) or trial.status.lower()


def rank(trials: Sequence[Trial], objective: ObjectiveSpec) -> list[Trial]:
    """Best first by ``objective``; trials without a finite value last, in their order."""
    scored = [t for t in trials if t.objective(objective.metric) is not None]
    missing = [t for t in trials if t.objective(objective.metric) is None]
    sign = -1.0 if objective.mode == "max" else 1.0
    scored.sort(key=lambda t: sign * (t.objective(objective.metric) or 0.0))
    return scored + missing


def sort_rows(table: Table, column: int, descending: bool = False) -> list[list[Cell]]:
    """Rows sorted by one column the way the HTML table sorts them on a header click:
    numbers before strings, missing values last in both directions; stable."""
    present = [r for r in table.rows if r[column].sort is not None]
    missing = [r for r in table.rows if r[column].sort is None]

    def key(row: list[Cell]) -> tuple[int, float, str]:
        v = row[column].sort
        return (0, float(v), "") if isinstance(v, float) else (1, 0.0, str(v))

    present.sort(key=key, reverse=descending)
    return present + missing


def trial_table(
    trials: Sequence[Trial], objectives: Sequence[ObjectiveSpec], params: Sequence[str]
) -> Table:
    """One row per trial: name, status, stop reason, objectives, effective batch, wall
    time, then the searched parameters."""
    columns = [
        "trial",
        "status",
        "stop reason",
        *[o.metric for o in objectives],
        "effective batch",
        "wall time (s)",
        *params,
    ]
    rows = []
    for t in trials:
        eff = t.effective_batch
        rows.append(
            [
                Cell(t.name, _trial_number(t.name)),
                Cell(status_of(t), status_of(t)),
                Cell(t.stop_reason or "–", t.stop_reason or None, t.stop_detail),
                *[_number(t.objective(o.metric)) for o in objectives],
                _number(None if eff is None else float(eff)),
                _number(t.wall_s),
                *[_param(t, p) for p in params],
            ]
        )
    return Table(columns, rows, [t.run_id for t in trials])


def _param(trial: Trial, name: str) -> Cell:
    # MLflow logs an inactive conditional parameter with the file's fixed value: not what
    # the trial searched, so it is shown as n/a
    if trial.sampled is None:
        return param_cell(trial.params.get(name))
    if name not in trial.sampled:
        return Cell("n/a", None, "inactive: its when: condition did not hold")
    return param_cell(str(trial.sampled[name]))


def _number(value: float | None) -> Cell:
    return Cell(fmt(value), value)


def _trial_number(name: str) -> SortValue:
    # trial-10 after trial-9, not after trial-1
    tail = name.rsplit("-", 1)[-1]
    return float(tail) if tail.isdigit() else name

"""The end-of-sweep summary: trial table, best trial(s), where to look next."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.config.models import Objective
from orchestrator.reserved import EPOCH, SKIP_REASON, STOP_DETAIL, STOP_REASON, STOP_STEP

__all__ = ["STOP_DETAIL", "STOP_REASON", "STOP_STEP", "end_reason"]


def end_reason(
    config: dict[str, Any], last: dict[str, Any], errored: bool, epochs: int
) -> tuple[str, str]:
    """Why a finished trial ended: ``(reason, detail)``; ``("", "")`` when it ran all epochs.

    Reasons: ``skipped`` (impossible batch plan), ``error``, a reason the trial reported
    itself (``nonfinite``), or ``scheduler`` (cut early by ASHA / median stopping).
    """
    if SKIP_REASON in config:
        return "skipped", str(config[SKIP_REASON])
    if errored:
        return "error", "trial raised an exception"
    if last.get(STOP_REASON):
        return str(last[STOP_REASON]), str(last.get(STOP_DETAIL, ""))
    done = int(last.get(EPOCH, 0) or 0)
    if done < epochs:
        return "scheduler", f"stopped by the scheduler after epoch {done} of {epochs}"
    return "", ""


@dataclass
class TrialRow:
    """One trial as it ended."""

    trial: str
    trial_id: str
    status: str
    stop_reason: str
    params: dict[str, Any]
    metrics: dict[str, float]
    epochs: int
    run_id: str | None = None
    stop_detail: str = ""
    #: optimizer step at which a divergence rule stopped it
    stop_step: int | None = None
    #: the scheduler that cut it early (``asha``, ``median``), when one did
    stopped_by: str = ""
    #: a population sweep's clones behind the trial, oldest first:
    #: ``[[donor trial id, epoch, cloning trial id], ...]`` (``orch.pbt.lineage``)
    lineage: list[list[Any]] = field(default_factory=list)


@dataclass
class SweepSummary:
    """What a sweep produced; written to ``summary.json`` and the MLflow parent run."""

    name: str
    sweep_dir: str
    tracking_uri: str | None
    parent_run_id: str | None
    objectives: list[dict[str, str]]
    trials: list[TrialRow]
    best: list[TrialRow] = field(default_factory=list)
    wall_s: float = 0.0
    #: seed repeats of the best configurations (``final:``), best mean first
    repeats: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(row: TrialRow, obj: Objective) -> float | None:
    v = row.metrics.get(obj.metric)
    return v if isinstance(v, int | float) and math.isfinite(v) else None


def best_trials(rows: list[TrialRow], objectives: list[Objective]) -> list[TrialRow]:
    """The best trial for one objective; the Pareto front (non-dominated set) for several.

    Trials without a finite value of every objective never count as best.
    """
    scored = [r for r in rows if all(_value(r, o) is not None for o in objectives)]
    if not scored:
        return []

    def key(r: TrialRow, o: Objective) -> float:
        v = _value(r, o)
        assert v is not None
        return v if o.mode == "max" else -v

    if len(objectives) == 1:
        return [max(scored, key=lambda r: key(r, objectives[0]))]

    def dominates(a: TrialRow, b: TrialRow) -> bool:
        ka = [key(a, o) for o in objectives]
        kb = [key(b, o) for o in objectives]
        return all(x >= y for x, y in zip(ka, kb, strict=True)) and ka != kb

    return [r for r in scored if not any(dominates(o, r) for o in scored)]


def render_summary(summary: SweepSummary, ui: str | None) -> str:
    """The human-readable end-of-sweep text."""
    counts: dict[str, int] = {}
    for r in summary.trials:
        counts[r.stop_reason or r.status] = counts.get(r.stop_reason or r.status, 0) + 1
    lines = [
        "",
        f"Sweep {summary.name!r} finished in {summary.wall_s:.0f}s: {len(summary.trials)} trials ("
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + ")",
    ]
    objs = ", ".join(f"{o['metric']} ({o['mode']})" for o in summary.objectives)
    if not summary.best:
        lines.append(f"No trial produced a finite {objs}.")
    for row in summary.best:
        title = "Best trial" if len(summary.best) == 1 else "Pareto-optimal trial"
        values = ", ".join(
            f"{o['metric']}={row.metrics.get(o['metric']):.4f}" for o in summary.objectives
        )
        lines.append(f"{title}: {row.trial}  {values}  (epochs {row.epochs})")
        for k, v in sorted(row.params.items()):
            lines.append(f"    {k} = {v}")
        if row.run_id:
            lines.append(f"    MLflow run: {row.run_id}")
    stopped = [r for r in summary.trials if r.stop_reason]
    if stopped:
        lines.append("Stopped early:")
        for r in stopped:
            who = f" ({r.stopped_by})" if r.stopped_by else ""
            at = f" at step {r.stop_step}" if r.stop_step is not None else ""
            lines.append(
                f"    {r.trial}: {r.stop_reason}{who}{at} (epoch {r.epochs}) - {r.stop_detail}"
            )
    names = {r.trial_id: r.trial for r in summary.trials}
    clones = [
        (r.trial, [e for e in r.lineage if len(e) == 3 and e[2] == r.trial_id])
        for r in summary.trials
    ]
    clones = [(trial, own) for trial, own in clones if own]
    if clones:
        lines.append("Population clones (the trial continued from the member's checkpoint):")
        for trial, own in clones:
            done = ", ".join(f"{names.get(d, d)} at epoch {e}" for d, e, _ in own)
            lines.append(f"    {trial}: cloned {done}")
    lines.append(f"Sweep directory: {summary.sweep_dir}")
    if summary.parent_run_id:
        lines.append(f"MLflow parent run: {summary.parent_run_id}")
    if ui:
        lines.append(f"Open the results: {ui}")
    return "\n".join(lines) + "\n"

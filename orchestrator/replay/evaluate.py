"""Score stopping policies on curves: compute spent, what was stopped, what was lost."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.divergence.base import as_number
from orchestrator.replay.curves import Curve
from orchestrator.replay.simulate import Outcome, Policy, replay
from orchestrator.reserved import STEP


@dataclass
class PolicyScore:
    """One policy's numbers (``None`` where the curves carry no labels to judge by)."""

    policy: str
    #: steps consumed / steps of the full curves (a report's ``step``, ``orch.step`` or,
    #: without either, its position counts as its step)
    compute_fraction: float
    stopped_by_rules: int
    stopped_by_scheduler: int
    reasons: dict[str, int]
    top_k: int
    top_k_kept: int  # of the k best trials (full-curve objective), how many ran to the end
    best_kept: bool
    topk_false_stops: int = 0  # top_k - top_k_kept
    diverged: int | None = None
    diverged_recall: float | None = None  # diverged trials stopped early (by anything)
    rules_recall: float | None = None  # diverged trials stopped by a rule
    healthy: int | None = None
    false_stops: int | None = None  # healthy trials stopped by a rule
    #: reports from the onset to the stop, over stopped diverged trials (negative: the
    #: scheduler cut the trial before it diverged)
    mean_detection_delay: float | None = None
    nan_trials: int = 0
    nan_first_report: int = 0  # of those, stopped at (or before) the first NaN report
    #: the scheduler raised during the replay (as it would have crashed the live sweep)
    error: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def to_dict(self, with_outcomes: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_outcomes:
            d.pop("outcomes")
        return d


def final_value(curve: Curve, metric: str) -> float | None:
    """The last finite value of ``metric`` in the full curve."""
    for report in reversed(curve.history):
        v = as_number(report.get(metric))
        if v is not None and math.isfinite(v):
            return v
    return None


def steps(curve: Curve) -> list[float]:
    """The step of each report: its ``step`` / ``orch.step`` value, else its position."""
    out = []
    for i, report in enumerate(curve.history):
        v = as_number(report.get("step", report.get(STEP)))
        out.append(v if v is not None and math.isfinite(v) else float(i + 1))
    return out


def first_nonfinite(curve: Curve) -> int | None:
    """Index of the first report with a NaN/inf ``train/*`` or ``val/*`` value."""
    for i, report in enumerate(curve.history):
        for k, v in report.items():
            x = as_number(v)
            if k.startswith(("train/", "val/")) and x is not None and not math.isfinite(x):
                return i
    return None


def score(
    curves: list[Curve],
    policy: Policy,
    *,
    metric: str,
    mode: str,
    concurrency: int,
    top_k: int = 3,
) -> PolicyScore:
    try:
        outcomes = replay(curves, policy, metric=metric, mode=mode, concurrency=concurrency)
    except Exception as exc:  # Ray's own classes can fail on real curves; that is a result
        return PolicyScore(
            policy.name, math.nan, 0, 0, {}, 0, 0, False, error=f"{type(exc).__name__}: {exc}"
        )
    step_lists = [steps(c) for c in curves]
    spent = sum(st[o.reports - 1] for st, o in zip(step_lists, outcomes, strict=True))
    total = sum(st[-1] for st in step_lists)
    pairs = list(zip(curves, outcomes, strict=True))

    # the k best trials by what their full curves reached; diverged ones never count
    sign = 1.0 if mode == "max" else -1.0
    ranked = [
        (sign * v, i)
        for i, (c, _) in enumerate(pairs)
        if c.label != "diverged" and (v := final_value(c, metric)) is not None
    ]
    ranked.sort(reverse=True)
    top = [i for _, i in ranked[:top_k]]
    kept = sum(1 for i in top if pairs[i][1].stopped_by is None)

    s = PolicyScore(
        policy=policy.name,
        compute_fraction=spent / max(total, 1),
        stopped_by_rules=sum(1 for o in outcomes if o.stopped_by == "rules"),
        stopped_by_scheduler=sum(1 for o in outcomes if o.stopped_by == "scheduler"),
        reasons=dict(Counter(o.reason.split(":")[0] for o in outcomes if o.reason)),
        top_k=len(top),
        top_k_kept=kept,
        best_kept=bool(top) and pairs[top[0]][1].stopped_by is None,
        topk_false_stops=len(top) - kept,
        outcomes=outcomes,
    )
    for c, o in pairs:
        nan_at = first_nonfinite(c)
        if nan_at is not None:
            s.nan_trials += 1
            s.nan_first_report += int(o.stopped_by is not None and o.reports <= nan_at + 1)
    if any(c.label for c in curves):
        diverged = [(c, o) for c, o in pairs if c.label == "diverged"]
        healthy = [(c, o) for c, o in pairs if c.label == "healthy"]
        s.diverged, s.healthy = len(diverged), len(healthy)
        if diverged:
            s.diverged_recall = sum(1 for _, o in diverged if o.stopped_by) / len(diverged)
            s.rules_recall = sum(1 for _, o in diverged if o.stopped_by == "rules") / len(diverged)
            delays = [
                o.reports - 1 - c.onset
                for c, o in diverged
                if o.stopped_by and c.onset is not None
            ]
            s.mean_detection_delay = statistics.fmean(delays) if delays else None
        s.false_stops = sum(1 for _, o in healthy if o.stopped_by == "rules")
    return s


def render(scores: list[PolicyScore], n_curves: int, concurrency: int) -> str:
    """The comparison table, one row per policy."""
    labelled = scores and scores[0].diverged is not None
    head = ["policy", "compute", "rule stops", "sched stops"]
    if labelled:
        head += ["recall", "by rules", "healthy stopped", "delay"]
    head += [f"top-{scores[0].top_k} kept" if scores else "top-k kept", "best kept", "NaN@1st"]
    rows = []
    for s in scores:
        if s.error:
            rows.append([s.policy, f"CRASHED: {s.error}"] + [""] * (len(head) - 2))
            continue
        row = [
            s.policy,
            f"{s.compute_fraction:.0%}",
            str(s.stopped_by_rules),
            str(s.stopped_by_scheduler),
        ]
        if labelled:
            row += [
                _pct(s.diverged_recall),
                _pct(s.rules_recall),
                f"{s.false_stops}/{s.healthy}",
                "-" if s.mean_detection_delay is None else f"{s.mean_detection_delay:+.1f}",
            ]
        row += [
            f"{s.top_k_kept}/{s.top_k}",
            "yes" if s.best_kept else "NO",
            f"{s.nan_first_report}/{s.nan_trials}",
        ]
        rows.append(row)
    widths = [
        max(len(r[i]) for r in [head, *rows] if not r[1].startswith("CRASHED"))
        for i in range(len(head))
    ]
    lines = [f"{n_curves} curves, {concurrency} trials at a time"]
    for r in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for s in scores:
        if s.reasons:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items()))
            lines.append(f"  {s.policy}: rules fired: {counts}")
    return "\n".join(lines) + "\n"


def render_stops(curves: list[Curve], s: PolicyScore) -> str:
    """Which trials ``s`` stopped, when and why, one line each; then the trials its
    scheduler protected (kept although they looked behind, or not judged yet), and why."""
    lines = [f"Stopped under {s.policy!r}:"]
    kept = []
    for c, o in zip(curves, s.outcomes, strict=True):
        label = f" [{c.label}{'/' + c.family if c.family else ''}]" if c.label else ""
        if o.stopped_by is None:
            if o.protected:
                kept.append(f"  {c.trial}{label}: ran to report {o.total} - {o.protected}")
            continue
        step = steps(c)[o.reports - 1]
        if o.stopped_by == "rules":
            why = f"{o.reason}: {o.detail}"
        else:
            why = f"scheduler: {o.detail}" if o.detail else "scheduler"
        lines.append(f"  {c.trial}{label}: report {o.reports}/{o.total} (step {step:g}) - {why}")
    if kept:
        lines.append(f"Protected under {s.policy!r} (kept although behind, and why):")
        lines += kept
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"

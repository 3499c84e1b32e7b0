"""Early-stopping policies side by side on three curve sets, in one run.

Run: python bench/stopping.py [--tuning]

Sets (``orchestrate replay``'s simulation, trials started in recorded order):

* ``generated``: ``bench/curves/generated.jsonl`` (200 seeded curves, 9 families), 4 at a time;
* ``recorded ... (held out)``: for each real recording (``bench/curves/*_recorded.jsonl``:
  tiny RT-DETR 14 and 24 epochs, the detector, RAM; recipes ``record_*.yaml``), the half
  that :func:`orchestrator.replay.curves.split_curves` holds out, 2 at a time; labelled by
  outcome (``label_recorded.py``);
* ``DETR-like (held out)``: ``bench/curves/detr_holdout.jsonl`` (slow starters, late-crossing
  LR-drop schedules; ``generate_detr.py --seed 1``), 4 at a time.

``--tuning`` reports the other halves instead (the recorded tuning half and
``detr_tune.jsonl``, seed 0): the forecast scheduler's defaults were chosen there.

Policies: Ray's ASHA as ``search_spaces/rtdetr.yaml`` shipped it (grace 5, reduction factor
2), Ray's asynchronous Hyperband (3 brackets of grace 2/4/8), the median stopping rule
(grace 5), the divergence rules alone, ASHA + rules (the previous sweep default) and the
forecast scheduler + rules (the new default). Targets, checked for the new policy on every
set: eventual top 3 kept 3/3, no healthy trial stopped by a rule, diverged recall >= 0.95
(where labelled), compute <= 50% (moonshot <= 40%). Exit code 1 on a miss.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.divergence import DivergenceConfig, build_rules  # noqa: E402
from orchestrator.replay.curves import Curve, load_curves, split_curves  # noqa: E402
from orchestrator.replay.evaluate import PolicyScore, score  # noqa: E402
from orchestrator.replay.simulate import Policy, SchedulerSpec  # noqa: E402

METRIC, MODE = "val/map", "max"

ASHA = SchedulerSpec.of("asha", grace_period=5, reduction_factor=2)
#: Ray's asynchronous Hyperband: its ASHA class over 3 brackets of grace periods
HYPERBAND = SchedulerSpec.of("asha", grace_period=2, reduction_factor=2, brackets=3, safe=False)
MEDIAN = SchedulerSpec.of("median", grace_period=5, min_samples_required=3)
#: the new policy, as ``stopping.scheduler: {kind: forecast}`` builds it by default
FORECAST = SchedulerSpec.of("forecast")


def policies() -> list[Policy]:
    rules = build_rules(DivergenceConfig(), (METRIC, MODE))
    none = SchedulerSpec.of("none")
    return [
        Policy("Ray ASHA g5 (as shipped)", dataclasses.replace(ASHA, safe=False), None),
        Policy("Ray Hyperband g2/4/8", HYPERBAND, None),
        Policy("median stopping g5", MEDIAN, None),
        Policy("rules only", none, rules),
        Policy("ASHA g5 + rules (old default)", ASHA, rules),
        Policy("forecast + rules (new default)", FORECAST, rules),
    ]


#: real recordings (bench/curves/record_*.yaml), outcome-labelled by label_recorded.py
RECORDED = [
    ("recorded RT-DETR 14 ep", "rtdetr_recorded.jsonl", 2),
    ("recorded RT-DETR 24 ep", "rtdetr_long_recorded.jsonl", 2),
    ("recorded detector 16 ep", "detector_recorded.jsonl", 2),
    ("recorded RAM 20 ep", "ram_recorded.jsonl", 2),
]


def sets(tuning: bool) -> list[tuple[str, list[Curve], int]]:
    curves = ROOT / "bench/curves"
    out = [("generated", load_curves(curves / "generated.jsonl"), 4)]
    for name, file, concurrency in RECORDED:
        if not (curves / file).is_file():
            continue
        tune, holdout = split_curves(load_curves(curves / file))
        half = f"{name} ({'tuning half' if tuning else 'held out'})"
        out.append((half, tune if tuning else holdout, concurrency))
    if tuning:
        out.append(("DETR-like (tuning, seed 0)", load_curves(curves / "detr_tune.jsonl"), 4))
    else:
        out.append(("DETR-like (held out, seed 1)", load_curves(curves / "detr_holdout.jsonl"), 4))
    return out


def table(name: str, n: int, concurrency: int, scores: list[PolicyScore]) -> str:
    head = ["policy", "compute", "top-3 kept", "best kept", "recall", "healthy by rules", "delay"]
    rows = []
    for s in scores:
        if s.error:
            rows.append([s.policy, f"CRASHED: {s.error}", "", "", "", "", ""])
            continue
        rows.append(
            [
                s.policy,
                f"{s.compute_fraction:.0%}",
                f"{s.top_k_kept}/{s.top_k}",
                "yes" if s.best_kept else "NO",
                "-" if s.diverged_recall is None else f"{s.diverged_recall:.0%}",
                "-" if s.false_stops is None else f"{s.false_stops}/{s.healthy}",
                "-" if s.mean_detection_delay is None else f"{s.mean_detection_delay:+.1f}",
            ]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"== {name}: {n} curves, {concurrency} at a time"]
    for r in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuning", action="store_true", help="report the tuning halves")
    parser.add_argument("--trials", action="store_true", help="list the new policy's stops")
    args = parser.parse_args()
    ok = True
    started = time.perf_counter()
    for name, curves, concurrency in sets(args.tuning):
        scores = [
            score(curves, p, metric=METRIC, mode=MODE, concurrency=concurrency) for p in policies()
        ]
        print(table(name, len(curves), concurrency, scores))
        ours = scores[-1]
        checks = {
            "top-3 kept 3/3": ours.top_k_kept == ours.top_k,
            "healthy stopped by rules 0": not ours.false_stops,
            "diverged recall >= 0.95": ours.diverged_recall is None
            or ours.diverged_recall >= 0.95,
            "compute <= 50%": ours.compute_fraction <= 0.50,
        }
        line = ", ".join(f"[{'ok' if v else 'MISS'}] {k}" for k, v in checks.items())
        moon = "ok" if ours.compute_fraction <= 0.40 else "miss"
        print(f"   new policy: {line}; moonshot <= 40%: {moon}\n")
        if args.trials:
            for c, o in zip(curves, ours.outcomes, strict=True):
                if o.stopped_by or o.protected:
                    what = (
                        f"stopped by {o.stopped_by} at report {o.reports}"
                        if o.stopped_by
                        else "kept"
                    )
                    why = " ".join(x for x in (o.detail, o.protected) if x)
                    print(f"     {c.trial} [{c.family or ''}]: {what}; {why}")
        ok = ok and all(checks.values())
    print(f"replayed in {time.perf_counter() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

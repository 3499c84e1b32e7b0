"""Divergence-aware stopping vs plain schedulers, measured side by side on recorded curves.

Run: python bench/divergence.py [--curves bench/curves/generated.jsonl] [--concurrency 4]

For each scheduler setting (ASHA as in ``search_spaces/rtdetr.yaml``, a gentler ASHA, the
median rule) the same curves are replayed under: no early stopping, the scheduler as Ray
ships it, our NaN-safe scheduler, the divergence rules alone, and scheduler + rules (what
``orchestrate sweep`` runs). Compute is relative to no early stopping, in the same run.
Targets checked at the end (issue 4): scheduler + rules spends <= 60% of the compute,
catches every NaN at its first report, stops >= 95% of diverged trials, and the rules stop
none of the 3 best trials.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.divergence import DivergenceConfig  # noqa: E402
from orchestrator.replay.command import policies  # noqa: E402
from orchestrator.replay.curves import load_curves  # noqa: E402
from orchestrator.replay.evaluate import render, score  # noqa: E402
from orchestrator.replay.simulate import SchedulerSpec  # noqa: E402

SETTINGS = {
    "ASHA grace 3, rf 2 (rtdetr.yaml)": SchedulerSpec("asha", grace_period=3, reduction_factor=2),
    "ASHA grace 5, rf 2": SchedulerSpec("asha", grace_period=5, reduction_factor=2),
    "median, grace 5": SchedulerSpec("median", grace_period=5, min_samples_required=3),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--curves", default=str(ROOT / "bench/curves/generated.jsonl"))
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    curves = load_curves(args.curves)
    ok = True
    for title, spec in SETTINGS.items():
        started = time.perf_counter()
        scores = [
            score(curves, p, metric="val/map", mode="max", concurrency=args.concurrency)
            for p in policies(DivergenceConfig(), spec, ("val/map", "max"))
        ]
        print(f"== {title} ==  ({time.perf_counter() - started:.1f}s to replay)")
        print(render(scores, len(curves), args.concurrency))
        base, ray_plain, ours = scores[0], scores[1], scores[-1]
        rules = next(s for s in scores if s.policy == "rules only")
        if ray_plain.error:
            print(f"Ray's {spec.kind} as shipped crashed: {ray_plain.error}")
            print(f"compute: ours {ours.compute / base.compute:.2f}x of no-early-stop\n")
        else:
            print(
                f"compute: ours {ours.compute / base.compute:.2f}x of no-early-stop, "
                f"{ours.compute / ray_plain.compute:.2f}x of Ray's {spec.kind} alone; "
                f"diverged stopped: ours {ours.recall:.0%} vs Ray's {ray_plain.recall:.0%}; "
                f"NaN at first report: ours {ours.nan_first_report}/{ours.nan_trials} "
                f"vs {ray_plain.nan_first_report}/{ray_plain.nan_trials}\n"
            )
        checks = {
            "compute <= 60%": ours.compute <= 0.60,
            "every NaN at its first report": ours.nan_first_report == ours.nan_trials,
            "recall >= 95%": (ours.recall or 0) >= 0.95,
            "rules stop none of the top 3": rules.top_k_kept == rules.top_k,
            "rules stop no healthy trial": rules.false_stops == 0,
        }
        for name, passed in checks.items():
            print(f"  [{'ok' if passed else 'MISS'}] {name}")
            ok &= passed
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

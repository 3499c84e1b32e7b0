"""``orchestrate replay``: curve files, the simulation against Ray's schedulers, scores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.divergence import DivergenceConfig, NonfiniteDetector, build_rules
from orchestrator.errors import CurvesError
from orchestrator.replay.curves import Curve, load_curves, write_curves
from orchestrator.replay.evaluate import score
from orchestrator.replay.simulate import Policy, SchedulerSpec, replay

ROOT = Path(__file__).resolve().parents[2]


def curve(name: str, maps: list[float], label: str | None = None, onset: int | None = None):
    return Curve(name, [{"val/map": m, "train/loss": 1.0} for m in maps], label, None, onset)


NONE = SchedulerSpec.of("none")


def test_no_policy_runs_everything_and_rules_stop_at_the_first_nan() -> None:
    curves = [curve("a", [0.1, 0.2, 0.3]), curve("b", [0.1, math.nan, 0.2])]
    out = replay(curves, Policy("none", NONE, None), metric="val/map", mode="max", concurrency=2)
    assert [(o.reports, o.stopped_by) for o in out] == [(3, None), (3, None)]
    rules = Policy("rules", NONE, NonfiniteDetector())
    out = replay(curves, rules, metric="val/map", mode="max", concurrency=2)
    assert [(o.reports, o.stopped_by, o.reason) for o in out] == [
        (3, None, None),
        (2, "rules", "nonfinite"),
    ]


def test_asha_replay_matches_hand_computed_rungs() -> None:
    # one at a time, ASHA grace 1, rf 2, max_t 4: rungs at 1 and 2 (and 4, the end).
    # a: records 0.5 @1, 0.6 @2 -> runs to the end (empty rungs never cut)
    # b: 0.2 @1 < cutoff(median of {0.5}) = 0.5 -> cut after 1 report
    # c: 0.7 @1 >= cutoff(50th pct of {0.5, 0.2}) = 0.35 -> on; 0.3 @2 < cutoff({0.6}) -> cut
    curves = [
        curve("a", [0.5, 0.6, 0.7, 0.8]),
        curve("b", [0.2, 0.3, 0.4, 0.5]),
        curve("c", [0.7, 0.3, 0.9, 0.9]),
    ]
    spec = SchedulerSpec.of("asha", grace_period=1, reduction_factor=2)
    out = replay(curves, Policy("asha", spec, None), metric="val/map", mode="max", concurrency=1)
    assert [(o.trial, o.reports, o.stopped_by) for o in out] == [
        ("a", 4, None),
        ("b", 1, "scheduler"),
        ("c", 2, "scheduler"),
    ]


def test_ray_asha_promotes_nan_ours_cuts_it() -> None:
    curves = [curve("a", [0.5, 0.6, 0.7, 0.8]), curve("nan", [math.nan] * 4)]
    base = dict(metric="val/map", mode="max", concurrency=1)
    plain = SchedulerSpec.of("asha", grace_period=1, reduction_factor=2, safe=False)
    safe = SchedulerSpec.of("asha", grace_period=1, reduction_factor=2)
    assert replay(curves, Policy("ray", plain, None), **base)[1].reports == 4  # type: ignore[arg-type]
    assert replay(curves, Policy("ours", safe, None), **base)[1].reports == 1  # type: ignore[arg-type]


def test_score_counts_compute_recall_false_stops_and_top_k() -> None:
    curves = [
        curve("best", [0.1, 0.4, 0.6, 0.8], "healthy"),
        curve("good", [0.1, 0.3, 0.5, 0.6], "healthy"),
        curve("nan", [0.1, 0.2, math.nan, math.nan], "diverged", onset=2),
    ]
    s = score(
        curves,
        Policy("rules", NONE, build_rules(DivergenceConfig())),
        metric="val/map",
        mode="max",
        concurrency=3,
        top_k=2,
    )
    assert s.compute_fraction == pytest.approx((4 + 4 + 3) / 12)
    assert (s.diverged_recall, s.rules_recall, s.false_stops, s.healthy) == (1.0, 1.0, 0, 2)
    assert (s.top_k, s.top_k_kept, s.best_kept, s.topk_false_stops) == (2, 2, True, 0)
    assert (s.nan_trials, s.nan_first_report, s.mean_detection_delay) == (1, 1, 0)
    assert s.reasons == {"nonfinite": 1}


def test_load_curves_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"trial": "x", "history": [{"val/map": 0.1}]}\n{"trial": "y"}\n')
    with pytest.raises(CurvesError, match=r"c.jsonl:2: history must be a list"):
        load_curves(path)
    path.write_text('{"trial": "x", "history": [{}], "onset": 3}\n')
    with pytest.raises(CurvesError, match=r"c.jsonl:1: onset must index history"):
        load_curves(path)
    path.write_text("{not json\n")
    with pytest.raises(CurvesError, match=r"c.jsonl:1: not valid JSON"):
        load_curves(path)
    with pytest.raises(CurvesError, match="no such curves file"):
        load_curves(tmp_path / "missing.jsonl")


def test_write_then_load_round_trips_nan(tmp_path: Path) -> None:
    curves = [curve("a", [0.1, math.nan], "diverged", onset=1)]
    write_curves(curves, tmp_path / "c.jsonl")
    (back,) = load_curves(tmp_path / "c.jsonl")
    assert back.trial == "a" and back.onset == 1 and math.isnan(back.history[1]["val/map"])


def test_cli_replay_json_on_the_shipped_curves() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "replay",
            str(ROOT / "bench/curves/generated.jsonl"),
            "--config",
            str(ROOT / "search_spaces/rtdetr.yaml"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    by = {p["policy"]: p for p in payload["policies"]}
    assert by["no early stop"]["compute_fraction"] == 1.0
    default = by["forecast + rules (sweep default)"]
    assert payload["policy"] == default["policy"]
    assert payload["compute_fraction"] == default["compute_fraction"] <= 0.5
    assert default["topk_false_stops"] == 0
    assert payload["diverged_recall"] >= 0.95 and default["false_stops"] == 0
    assert default["nan_first_report"] == default["nan_trials"] > 0
    assert by["rules only"]["topk_false_stops"] == 0
    assert {"trial", "report", "by", "reason", "detail"} <= set(payload["stopped"][0])


def test_cli_replay_bad_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "replay", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}:1: each line must be a JSON object, got list"


def test_ray_median_crashes_on_a_final_report_without_evaluation_ours_does_not() -> None:
    # "a" evaluates every other epoch and ends on a report without val/map; "c", compared
    # with it at epoch 5, makes Ray's rule read that final report's missing metric
    a = Curve("a", [{}, {"val/map": 0.2}, {}, {"val/map": 0.4}, {}])
    c = Curve("c", [{"val/map": 0.1 * t} for t in range(1, 7)])
    curves = [a, c]
    base = dict(metric="val/map", mode="max", concurrency=1)
    plain = SchedulerSpec.of("median", grace_period=1, min_samples_required=1, safe=False)
    safe = SchedulerSpec.of("median", grace_period=1, min_samples_required=1)
    crashed = score(curves, Policy("ray", plain, None), **base)  # type: ignore[arg-type]
    assert crashed.error == "KeyError: 'val/map'"
    ours = score(curves, Policy("ours", safe, None), **base)  # type: ignore[arg-type]
    assert ours.error is None and [o.reports for o in ours.outcomes] == [5, 6]


def test_rules_on_recorded_rtdetr_curves_stop_only_poor_runs() -> None:
    curves = load_curves(ROOT / "bench/curves/rtdetr_recorded.jsonl")
    rules = Policy("rules", NONE, build_rules(DivergenceConfig(), ("val/map", "max")))
    s = score(curves, rules, metric="val/map", mode="max", concurrency=2)
    assert s.topk_false_stops == 0 and s.best_kept
    stopped = [c for c, o in zip(curves, s.outcomes, strict=True) if o.stopped_by]
    finals = sorted(max(r.get("val/map", 0) for r in c.history[-3:]) for c in curves)
    # everything the rules stopped ends below the median trial
    assert stopped and all(
        max(r.get("val/map", 0) for r in c.history[-3:]) < finals[len(finals) // 2]
        for c in stopped
    )

"""The learning-curve forecaster and the forecast scheduler, on hand-made curves."""

from __future__ import annotations

import math
import time

import pytest

from orchestrator.config.lr_schedule import LrSchedule, schedule_with
from orchestrator.replay.curves import Curve
from orchestrator.replay.simulate import Policy, SchedulerSpec, replay
from orchestrator.tuning.forecast import (
    TAU_GRID,
    fit_saturating,
    forecast,
    noise_of,
    onset,
)

# --- the forecaster ----------------------------------------------------------------------


def test_fit_recovers_an_exact_saturating_curve() -> None:
    times = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    values = [0.5 - 0.4 * math.exp(-(t - 1) / 2.0) for t in times]
    a, b, sse = fit_saturating(times, values, 2.0, 1.0)
    assert a == pytest.approx(0.5) and b == pytest.approx(0.4) and sse == pytest.approx(0.0)


def test_fit_of_a_falling_curve_is_flat() -> None:
    # b >= 0: a saturating *rise*; a falling curve is fitted by its mean
    a, b, _ = fit_saturating([1.0, 2.0, 3.0], [0.3, 0.2, 0.1], 1.0, 1.0)
    assert b == 0.0 and a == pytest.approx(0.2)


def test_noise_of_alternating_noise() -> None:
    # c ± s alternately: every second difference is ±4s
    s = 0.01
    values = [0.3 + s * (-1) ** i for i in range(9)]
    assert noise_of(values) == pytest.approx(4 * s / (0.6745 * math.sqrt(6)))
    # a straight line has no noise
    assert noise_of([0.1 * i for i in range(6)]) == pytest.approx(0.0)


def test_onset_is_the_last_flat_report() -> None:
    values = [0.0, 0.0, 0.0, 0.1, 0.2, 0.25]
    # noise 0 (three zero second differences of five), threshold 0 + 0.1 x 0.25: the
    # first value above it is 0.1 at index 3, so the flat start ends at index 2
    assert onset(values, noise_of(values)) == 2


def test_forecast_of_an_exact_curve_is_its_value_at_the_horizon() -> None:
    times = [float(t) for t in range(1, 9)]
    horizon = 21.0
    tau = TAU_GRID[3] * (horizon - 1.0)  # 0.2 x 20 = 4 epochs: on the grid
    values = [0.6 - 0.5 * math.exp(-(t - 1) / tau) for t in times]
    f = forecast(times, values, horizon, band=1.0)
    assert f.phase == "fitted"
    assert f.point == pytest.approx(0.6 - 0.5 * math.exp(-20 / 4), abs=1e-9)
    assert f.upper >= f.point


def test_optimistic_forecast_of_a_line_is_bounded_by_the_line() -> None:
    # a straight line is the limit of the saturating family: no fit goes above it, and the
    # slowest-saturating one comes close
    times = [float(t) for t in range(1, 7)]
    values = [0.1 + 0.05 * t for t in times]
    f = forecast(times, values, 10.0, band=1.0)
    line = 0.1 + 0.05 * 10
    assert f.phase == "fitted"
    assert line - 0.02 < f.point <= line + 1e-9
    assert f.upper >= f.point


def test_lr_drop_ahead_raises_only_the_optimistic_forecast() -> None:
    times = [float(t) for t in range(1, 9)]
    values = [0.6 - 0.5 * math.exp(-(t - 1) / 4.0) for t in times]
    plain = forecast(times, values, 21.0, band=1.0)
    dropped = forecast(times, values, 21.0, band=1.0, drop=0.9, drop_gain=0.5)
    assert dropped.point == plain.point
    gain = 0.5 * 0.9 * (plain.point - values[0])
    assert dropped.upper == pytest.approx(plain.upper + gain)


def test_curves_the_fit_cannot_judge_are_warming() -> None:
    assert forecast([1.0, 2.0], [0.1, 0.2], 10.0).phase == "warming"
    flat = forecast([1.0, 2.0, 3.0, 4.0], [0.01, 0.012, 0.009, 0.011], 10.0)
    assert flat.phase == "warming" and "not started" in flat.why and flat.upper == math.inf
    # it rose, but less than the peers' start threshold
    small = forecast([1.0, 2.0, 3.0], [0.0, 0.01, 0.02], 10.0, min_rise=0.05)
    assert small.phase == "warming" and "not started" in small.why
    # a sigmoid's convex start: each two-report slope steeper than the last
    rising = forecast([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.01, 0.03, 0.07, 0.15], 10.0)
    assert rising.phase == "warming" and "accelerating" in rising.why


def test_forecast_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        forecast([1.0, 2.0], [0.1], 5.0)


# --- LR schedules -------------------------------------------------------------------------


def test_lr_schedules_by_epoch() -> None:
    multi = LrSchedule(kind="multistep", milestones=[6, 8], gamma=0.1)
    assert [multi.factor(e, 10) for e in (0, 5.9, 6, 8)] == pytest.approx([1, 1, 0.1, 0.01])
    assert multi.drop_ahead(3, 10) == pytest.approx(1 - 0.01)  # both drops ahead
    assert multi.drop_ahead(9, 10) == 0.0
    step = LrSchedule(kind="step", step_size=3, gamma=0.5)
    assert step.factor(7, 10) == pytest.approx(0.25)
    cos = LrSchedule(kind="cosine", min_factor=0.1)
    assert cos.factor(5, 10) == pytest.approx(0.1 + 0.9 * 0.5)
    assert LrSchedule().drop_ahead(0, 10) == 0.0


def test_lr_schedule_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="multistep needs milestones"):
        LrSchedule(kind="multistep")
    with pytest.raises(ValueError, match="increasing"):
        LrSchedule(kind="multistep", milestones=[8, 6])
    with pytest.raises(ValueError, match="step needs step_size"):
        LrSchedule(kind="step")


def test_a_trials_sampled_schedule_overrides_the_sweeps() -> None:
    base = LrSchedule(kind="multistep", milestones=[6])
    got = schedule_with(base, {"optim.schedule.gamma": 0.5, "optim.lr": 0.1})
    assert got.kind == "multistep" and got.gamma == 0.5 and got.milestones == [6]


# --- the scheduler --------------------------------------------------------------------------


def _curve(name: str, values: list[float], **params: object) -> Curve:
    return Curve(name, [{"val/map": v} for v in values], params=dict(params))


def _steady(level: float, n: int = 12) -> list[float]:
    return [level * (1 - math.exp(-t / 2)) for t in range(1, n + 1)]


#: three steady runs, a clearly poor one, and a slow starter that ends best
SLOW = [0.0, 0.0, 0.001, 0.0, 0.05, 0.2, 0.4, 0.55, 0.62, 0.66, 0.68, 0.69]
CURVES = [
    _curve("good-1", _steady(0.5)),
    _curve("good-2", _steady(0.45)),
    _curve("poor", _steady(0.1)),
    _curve("good-3", _steady(0.4)),
    _curve("slow", SLOW),
]


def _run(kind: str, curves: list[Curve], **kw: object) -> dict[str, object]:
    spec = SchedulerSpec.of(kind, grace_period=2, reduction_factor=2, **kw)
    outcomes = replay(
        curves, Policy(kind, spec, None), metric="val/map", mode="max", concurrency=5
    )
    return {c.trial: o for c, o in zip(curves, outcomes, strict=True)}


def test_forecast_keeps_the_slow_starter_that_asha_cuts() -> None:
    asha = _run("asha", CURVES)
    assert asha["slow"].stopped_by == "scheduler"  # type: ignore[attr-defined]
    ours = _run("forecast", CURVES)
    assert ours["slow"].stopped_by is None  # type: ignore[attr-defined]
    # named with why: not started at the first rungs, then a straight line through its rise
    assert "accelerating" in ours["slow"].protected  # type: ignore[attr-defined]
    # and still cuts the poor run, saying against what
    poor = ours["poor"]
    assert poor.stopped_by == "scheduler"  # type: ignore[attr-defined]
    assert "cutoff" in poor.detail  # type: ignore[attr-defined]


def test_decisions_are_deterministic() -> None:
    a = _run("forecast", CURVES)
    b = _run("forecast", CURVES)
    assert [(o.reports, o.stopped_by) for o in a.values()] == [  # type: ignore[attr-defined]
        (o.reports, o.stopped_by)
        for o in b.values()  # type: ignore[attr-defined]
    ]


def test_lr_drop_ahead_protects_a_plateau() -> None:
    # the same plateau below the others: cut with a constant LR, kept with a x0.1 drop
    # ahead (the highest LR of the rung, so the whole drop_gain applies)
    low = [0.3 * (1 - math.exp(-t / 2)) for t in range(1, 13)]
    others = [
        _curve(f"g{i}", _steady(level), **{"optim.lr": 1e-4})
        for i, level in enumerate((0.36, 0.37, 0.38))
    ]
    const = _run("forecast", [*others, _curve("hi-lr", low, **{"optim.lr": 1e-3})])
    assert const["hi-lr"].stopped_by == "scheduler"  # type: ignore[attr-defined]
    params = {
        "optim.lr": 1e-3,
        "optim.schedule.kind": "multistep",
        "optim.schedule.milestones": [10],
    }
    drop = _run("forecast", [*others, _curve("hi-lr", low, **params)], drop_gain=0.5)
    assert drop["hi-lr"].stopped_by is None  # type: ignore[attr-defined]
    assert "LR drop ahead" in drop["hi-lr"].protected  # type: ignore[attr-defined]


def test_nan_objective_is_cut_at_once() -> None:
    curves = [*CURVES[:2], _curve("nan", [0.1, 0.2, math.nan, 0.3, 0.3, 0.3])]
    out = _run("forecast", curves)
    assert out["nan"].stopped_by == "scheduler" and out["nan"].reports == 3  # type: ignore[attr-defined]


def test_a_decision_costs_well_under_a_millisecond_at_1000_trials() -> None:
    from orchestrator.replay.simulate import _Controller, _Trial
    from orchestrator.tuning.forecast_scheduler import ForecastScheduler

    s = ForecastScheduler(
        metric="val/map", mode="max", max_t=30, grace_period=3, reduction_factor=3
    )
    trials = [_Trial(f"t{i}") for i in range(1000)]
    for tr in trials:
        s.on_trial_add(_Controller(), tr)
    # every trial reports 9 epochs: decisions at the rungs of epoch 3 and 9; CPU time of
    # the decisions only (the machine running the tests may be shared)
    spent = 0.0
    for t in range(1, 10):
        for i, tr in enumerate(trials):
            level = 0.2 + 0.4 * (i % 97) / 97
            result = {"training_iteration": t, "val/map": level * (1 - math.exp(-t / 3))}
            started = time.process_time()
            s.on_trial_result(_Controller(), tr, result)
            if t in (3, 9):
                spent += time.process_time() - started
    assert spent / 2000 < 1e-3


def test_replay_trials_names_the_protected_trials_and_why(tmp_path) -> None:
    import io

    from orchestrator.replay.command import ReplayOptions, run_replay
    from orchestrator.replay.curves import write_curves

    path = tmp_path / "c.jsonl"
    write_curves(CURVES, path)
    out = io.StringIO()
    opts = ReplayOptions(curves=str(path), scheduler="forecast", concurrency=5, show_trials=True)
    run_replay(opts, out)
    text = out.getvalue()
    assert "Protected under 'forecast + rules (sweep default)'" in text
    (slow,) = [line for line in text.splitlines() if line.startswith("  slow")]
    assert "ran to report 12" in slow and "accelerating" in slow
    (poor,) = [line for line in text.splitlines() if line.startswith("  poor")]
    assert "scheduler: forecast rung at epoch" in poor

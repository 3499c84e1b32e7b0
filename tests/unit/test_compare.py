"""``orchestrate compare``'s pure parts on hand-made trials: the t-interval of seed
repeats, the Pareto front, ranking and sorting of the trial table, the space recovered
from MLflow's strings, chart helpers. Expected values are worked out here by hand."""

from __future__ import annotations

import math

import pytest

from orchestrator.compare.pareto import front_indices, pareto_trials
from orchestrator.compare.plots import Series, line_chart
from orchestrator.compare.records import ObjectiveSpec, Trial
from orchestrator.compare.repeats import repeat_groups, t_interval
from orchestrator.compare.space import parse_space, sampled_params
from orchestrator.compare.svg import ticks
from orchestrator.compare.table import fmt, rank, sort_rows, trial_table

MAP = ObjectiveSpec("val/map", "max")


def trial(name: str, value: float | None, **tags: str) -> Trial:
    metrics = {} if value is None else {"val/map": value}
    return Trial(name, name, "FINISHED", {"train.seed": "0"}, metrics, dict(tags))


# --- 95% t-interval ---------------------------------------------------------------------


def test_t_interval_of_three_seeds_matches_the_t_table():
    # 0.40, 0.42, 0.44: mean 0.42; s = sqrt((0.02² + 0 + 0.02²) / 2) = 0.02;
    # t(0.975, 2 dof) = 4.303 (printed t-table); half width = 4.303 · 0.02 / √3 = 0.04969
    ci = t_interval([0.40, 0.42, 0.44])
    assert ci.n == 3 and ci.mean == pytest.approx(0.42)
    assert ci.std == pytest.approx(0.02)
    assert ci.low == pytest.approx(0.42 - 0.04969, abs=2e-5)
    assert ci.high == pytest.approx(0.42 + 0.04969, abs=2e-5)


def test_t_interval_of_two_runs_is_wide():
    # 1 and 3: mean 2, s = √2, t(0.975, 1) = 12.706: half = 12.706 · √2 / √2 = 12.706
    ci = t_interval([1.0, 3.0])
    assert (ci.low, ci.high) == pytest.approx((2 - 12.706, 2 + 12.706), abs=1e-3)


def test_t_interval_of_one_run_has_no_interval():
    ci = t_interval([0.5])
    assert (ci.n, ci.mean, ci.std, ci.low, ci.high) == (1, 0.5, None, None, None)


def test_repeats_group_under_their_original_and_rank_by_mean():
    a, b = trial("a", 0.30), trial("b", 0.50)
    repeats = [
        trial("a1", 0.40, **{"orch.phase": "repeat", "orch.repeat_of": "a", "orch.seed": "1"}),
        trial("a2", 0.50, **{"orch.phase": "repeat", "orch.repeat_of": "a", "orch.seed": "2"}),
        # b's repeat re-used b's own seed 0: b must not be counted twice
        trial("b0", 0.10, **{"orch.phase": "repeat", "orch.repeat_of": "b", "orch.seed": "0"}),
        trial("b1", 0.20, **{"orch.phase": "repeat", "orch.repeat_of": "b", "orch.seed": "1"}),
    ]
    groups = repeat_groups([a, b], repeats, MAP)
    # a: 0.30, 0.40, 0.50 -> mean 0.40; b: 0.10, 0.20 (b itself left out) -> mean 0.15
    assert [g.original.name for g in groups] == ["a", "b"]
    assert groups[0].values == [0.30, 0.40, 0.50] and groups[0].seeds == ["0", "1", "2"]
    assert groups[0].interval.mean == pytest.approx(0.40)
    assert groups[1].values == [0.10, 0.20] and groups[1].interval.mean == pytest.approx(0.15)
    # minimising the same metric reverses the ranking
    low = ObjectiveSpec("val/map", "min")
    assert [g.original.name for g in repeat_groups([a, b], repeats, low)] == ["b", "a"]


# --- Pareto front -----------------------------------------------------------------------


def test_front_of_two_maximised_objectives():
    points = [(1, 5), (2, 4), (2, 2), (0, 6), (1, 4)]
    # (2,2) is beaten by (2,4); (1,4) by (1,5); the other three trade off
    assert front_indices(points, ["max", "max"]) == [0, 1, 3]


def test_front_with_one_objective_minimised():
    points = [(1, 5), (2, 4), (2, 2), (0, 6), (1, 4)]
    # high first, low second: (2,2) is at least as good as every point on both
    assert front_indices(points, ["max", "min"]) == [2]


def test_equal_points_do_not_dominate_each_other():
    assert front_indices([(1, 1), (1, 1), (0, 0)], ["max", "max"]) == [0, 1]


def test_trials_without_every_objective_are_never_on_the_front():
    speed = ObjectiveSpec("train/samples_per_s", "max")
    fast = Trial("f", "f", "FINISHED", {}, {"train/samples_per_s": 500.0}, {})
    good = Trial("g", "g", "FINISHED", {}, {"val/map": 0.5, "train/samples_per_s": 10.0}, {})
    nan = Trial("n", "n", "FINISHED", {}, {"val/map": math.nan, "train/samples_per_s": 9e9}, {})
    assert [t.name for t in pareto_trials([fast, good, nan], [MAP, speed])] == ["g"]


# --- trial table ------------------------------------------------------------------------


def test_rank_puts_best_first_and_missing_last():
    ts = [trial("t1", 0.2), trial("t2", None), trial("t3", 0.5), trial("t4", math.nan)]
    assert [t.name for t in rank(ts, MAP)] == ["t3", "t1", "t2", "t4"]
    assert [t.name for t in rank(ts, ObjectiveSpec("val/map", "min"))] == [
        "t1",
        "t3",
        "t2",
        "t4",
    ]


def test_sorting_a_column_numbers_before_text_missing_last_both_ways():
    ts = [trial(f"trial-{n}", v) for n, v in [(10, 0.3), (9, None), (2, 0.1), (1, 0.2)]]
    table = trial_table(ts, [MAP], [])
    col = table.columns.index("val/map")
    names = [r[0].text for r in sort_rows(table, col)]
    assert names == ["trial-2", "trial-1", "trial-10", "trial-9"]
    names = [r[0].text for r in sort_rows(table, col, descending=True)]
    assert names == ["trial-10", "trial-1", "trial-2", "trial-9"]
    # trial names sort by their number: trial-10 after trial-9
    assert [r[0].text for r in sort_rows(table, 0)] == [
        "trial-1",
        "trial-2",
        "trial-9",
        "trial-10",
    ]


def test_table_shows_inactive_conditional_parameters_as_na():
    specs = parse_space(
        {
            "loss.cls": {"choice": ["vfl", "ce"]},
            "loss.ce.bg_weight": {"float": [1e-4, 1.0], "log": True, "when": {"loss.cls": ["ce"]}},
        }
    )
    t = Trial("t", "trial-1", "FINISHED", {"loss.cls": "vfl", "loss.ce.bg_weight": "1.0"}, {}, {})
    t.sampled = sampled_params(t.params, specs)
    row = trial_table([t], [MAP], ["loss.cls", "loss.ce.bg_weight"]).rows[0]
    assert [c.text for c in row[-2:]] == ["vfl", "n/a"]


def test_logged_strings_are_typed_back_with_the_space():
    specs = parse_space(
        {
            "batch.micro": {"choice": ["auto", 4]},
            "batch.effective": {"int": [8, 32]},
            "optim.lr": {"float": [1e-5, 1e-3], "log": True},
        }
    )
    logged = {"batch.micro": "4", "batch.effective": "16", "optim.lr": "0.0003", "x": "1"}
    assert sampled_params(logged, specs) == {
        "batch.micro": 4,
        "batch.effective": 16,
        "optim.lr": 0.0003,
    }
    # a value outside the choices: the run was not a trial of this space
    assert sampled_params({**logged, "batch.micro": "8"}, specs) is None


def test_numbers_are_short():
    # whole numbers whole (batch sizes, seconds), 4 significant digits, e-notation when huge
    assert [fmt(v) for v in (None, 16.0, 123456.0, 0.123456, 0.0003, 123456.7)] == [
        "–",
        "16",
        "123456",
        "0.1235",
        "0.0003",
        "1.23e+05",
    ]


# --- chart helpers ----------------------------------------------------------------------


def test_ticks_are_round_numbers_inside_the_range():
    assert ticks(0.0, 1.0, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert ticks(0.05, 0.43, 4) == [0.1, 0.2, 0.3, 0.4]
    assert ticks(1e-4, 1e-2, log=True) == [1e-4, 1e-3, 1e-2]


def test_a_diverging_stopped_run_does_not_flatten_the_healthy_ones():
    healthy = Series("ok", [(1, 2.0), (2, 1.5), (3, 1.0)], "#000")
    diverged = Series("bad", [(1, 2.1), (2, 500.0)], "#f00", dashed=True)
    svg = line_chart("train/loss", [healthy, diverged])
    # the y axis follows the healthy run (ticks up to ~2, not 500) and says it clipped
    assert "dashed: clipped" in svg
    assert ">500<" not in svg and ">2<" in svg
    assert svg.count("class='trace'") == 2
    # where the stopped run ended stays visible, on the top edge, with its real value
    assert svg.count("class='stop-mark'") == 1 and "bad stopped at step 2: 500" in svg


# --- parameter importance ---------------------------------------------------------------


def test_importance_finds_the_one_parameter_the_objective_depends_on():
    from orchestrator.compare.importance import param_importances

    space = {
        "optim.lr": {"float": [1e-4, 1e-2], "log": True},
        "loss.cls": {"choice": ["vfl", "ce"]},
        "loss.ce.bg_weight": {"float": [1e-3, 1.0], "log": True, "when": {"loss.cls": ["ce"]}},
    }
    specs = parse_space(space)
    trials = []
    for i in range(24):
        # lr sweeps its range; cls and bg_weight cycle independently of it and of the score
        lr = 10 ** (-4 + 2 * i / 23)
        cls = ["vfl", "ce"][i % 2]
        params = {"optim.lr": str(lr), "loss.cls": cls, "loss.ce.bg_weight": str(10 ** -(i % 3))}
        t = Trial(f"r{i}", f"trial-{i}", "FINISHED", params, {"val/map": -abs(i - 12)}, {})
        t.sampled = sampled_params(params, specs)
        trials.append(t)
    scores = param_importances(trials, [MAP], space)["val/map"]
    assert max(scores, key=scores.get) == "optim.lr"
    assert sum(scores.values()) == pytest.approx(1.0)
    # too few trials: no importance rather than noise
    assert param_importances(trials[:3], [MAP], space) == {}

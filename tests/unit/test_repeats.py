"""Seed repeats: which configurations run again, with which seeds, and how they rank."""

from __future__ import annotations

import math

import pytest

from orchestrator.config import load_sweep
from orchestrator.tuning.repeats import (
    REPEAT_OF,
    REPEAT_TRIAL,
    SEED,
    render_repeats,
    repeat_configs,
    summarise,
)
from orchestrator.tuning.summary import TrialRow

SWEEP = """\
name: rep
task: {kind: regression}
batch: {effective: 16, micro: 8}
train: {seed: 7}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [1.0e-3, 1.0e-1], log: true}
final: {top: 2, seeds: 3}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP)
    return load_sweep(path)


def _row(trial, mse, status="done", reason=""):
    return TrialRow(
        trial=trial, trial_id=trial, status=status, stop_reason=reason,
        params={"optim.lr": 0.01}, metrics={"val/mse": mse}, epochs=8, run_id=f"run-{trial}",
    )  # fmt: skip


def test_the_top_k_finished_trials_get_n_new_seeds_each(config):
    rows = [
        _row("trial-1", 0.5),
        _row("trial-2", 0.1, reason="nonfinite"),  # stopped: never repeated
        _row("trial-3", 0.2),
        _row("trial-4", math.nan),
        _row("trial-5", 0.3),
    ]
    configs = repeat_configs(config, rows)
    assert [(c[REPEAT_TRIAL], c["train.seed"]) for c in configs] == [
        ("trial-3", 1007), ("trial-3", 2007), ("trial-3", 3007),
        ("trial-5", 1007), ("trial-5", 2007), ("trial-5", 3007),
    ]  # fmt: skip
    first = configs[0]
    assert first[REPEAT_OF] == "run-trial-3" and first[SEED] == 1007
    assert first["optim.lr"] == 0.01
    # the batch plan is derived again, as for a searched trial
    assert first["orch.accum"] == 2 and first["orch.effective_batch"] == 16


def test_ranked_by_mean_over_the_original_and_its_repeats_with_t_interval(config):
    rows = [_row("trial-1", 0.30), _row("trial-2", 0.20)]
    results = [
        ({REPEAT_TRIAL: "trial-1", SEED: 1007}, {"val/mse": 0.10}),
        ({REPEAT_TRIAL: "trial-1", SEED: 2007}, {"val/mse": 0.20}),
        ({REPEAT_TRIAL: "trial-2", SEED: 1007}, {"val/mse": 0.40}),
        ({REPEAT_TRIAL: "trial-2", SEED: 2007}, {"val/mse": math.nan}),
    ]
    ranked = summarise(config, rows, results)
    assert [r.trial for r in ranked] == ["trial-1", "trial-2"]
    one = ranked[0]
    assert one.seeds == [7, 1007, 2007] and one.values == [0.30, 0.10, 0.20]
    # mean 0.2, s = 0.1, t(0.975, 2) = 4.3027: half-width 4.3027 * 0.1 / sqrt(3) = 0.24841
    assert one.mean == pytest.approx(0.2)
    assert one.low == pytest.approx(0.2 - 0.248414, abs=1e-5)
    assert one.high == pytest.approx(0.2 + 0.248414, abs=1e-5)
    two = ranked[1]
    assert two.values == [0.20, 0.40] and two.failed == [2007]
    # n = 2: mean 0.3, s = 0.141421, t(0.975, 1) = 12.706: half-width 1.27062
    assert two.high == pytest.approx(0.3 + 1.270620, abs=1e-5)
    text = render_repeats(ranked, "val/mse", best_trial="trial-2")
    assert "trial-1: 0.2000 [-0.0484, 0.4484]  n=3 (seeds 7, 1007, 2007)" in text
    assert "no finite val/mse with seeds [2007]" in text
    assert "orchestrate compare --promote run-trial-1" in text

"""Tuning parts without a cluster: sampler sharding, searcher NaN handling, schedulers,
the summary's best/Pareto choice and stop reasons."""

from __future__ import annotations

import math

import optuna
import pytest

from orchestrator.config.batch import plan_batch
from orchestrator.config.models import Objective
from orchestrator.training.sampler import MicroBatchSampler
from orchestrator.tuning.summary import TrialRow, best_trials, end_reason


def steps_of(num_samples: int, effective: int, micro: int, workers: int) -> list[set[int]]:
    """The set of sample indices each optimizer step of epoch 0 sees, over all workers."""
    plan = plan_batch(effective, micro, workers)
    per_rank = [list(MicroBatchSampler(num_samples, plan, r, seed=3)) for r in range(workers)]
    steps = []
    for s in range(num_samples // effective):
        seen: set[int] = set()
        for rank in per_rank:
            for batch in rank[s * plan.accum : (s + 1) * plan.accum]:
                assert len(batch) == micro
                seen.update(batch)
        steps.append(seen)
    return steps


def test_every_split_of_an_effective_batch_sees_the_same_samples_per_step():
    one = steps_of(40, 16, 16, 1)
    two = steps_of(40, 16, 4, 2)  # 2 workers x micro 4 x accumulation 2
    assert one == two
    assert len(one) == 2  # 40 // 16 steps; the 8 left over are dropped
    assert all(len(s) == 16 for s in one)
    assert not one[0] & one[1]


def test_sampler_lengths_and_epochs_differ():
    plan = plan_batch(8, 2, 2)
    sampler = MicroBatchSampler(20, plan, rank=1, seed=0)
    assert len(sampler) == 2 * plan.accum == 4  # 20 // 8 = 2 steps x accumulation 2
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    with pytest.raises(ValueError, match="fewer than one effective batch"):
        MicroBatchSampler(4, plan, rank=0, seed=0)


def row(name: str, **metrics: float) -> TrialRow:
    return TrialRow(name, name, "done", "", {}, dict(metrics), 1)


def test_best_single_objective_ignores_nan():
    rows = [row("a", m=0.2), row("b", m=float("nan")), row("c", m=0.5), row("d")]
    assert [r.trial for r in best_trials(rows, [Objective(metric="m", mode="max")])] == ["c"]
    assert [r.trial for r in best_trials(rows, [Objective(metric="m", mode="min")])] == ["a"]


def test_pareto_front_of_two_objectives():
    # maximise m, minimise t: a (0.5, 3) and b (0.3, 1) trade off; c (0.3, 2) is dominated by b
    rows = [row("a", m=0.5, t=3), row("b", m=0.3, t=1), row("c", m=0.3, t=2)]
    objectives = [Objective(metric="m", mode="max"), Objective(metric="t", mode="min")]
    assert sorted(r.trial for r in best_trials(rows, objectives)) == ["a", "b"]


def test_end_reasons():
    assert end_reason({"orch.skip_reason": "x"}, {}, False, 5) == ("skipped", "x")
    assert end_reason(
        {}, {"orch.stop_reason": "nonfinite", "orch.stop_detail": "d"}, False, 5
    ) == ("nonfinite", "d")
    assert end_reason({}, {"orch.epoch": 2}, False, 5)[0] == "scheduler"
    assert end_reason({}, {"orch.epoch": 5}, False, 5) == ("", "")
    assert end_reason({}, {}, True, 5)[0] == "error"


def test_searcher_tells_optuna_pruned_for_nan_or_missing_objective():
    from orchestrator.tuning.searcher import SweepSearch

    def space(trial):
        trial.suggest_float("x", 0.0, 1.0)
        return None

    search = SweepSearch(
        space=space, metric="val/map", mode="max", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for tid in ("ok", "nan", "missing"):
        search.suggest(tid)
    search.on_trial_result("nan", {"val/map": 0.1, "training_iteration": 1})
    search.on_trial_result("nan", {"train/loss": math.nan, "training_iteration": 2})  # no KeyError
    search.on_trial_complete("ok", {"val/map": 0.4})
    search.on_trial_complete("nan", {"val/map": math.nan})
    search.on_trial_complete("missing", {"train/loss": math.nan})
    states = {t.number: t.state for t in search._ot_study.trials}
    assert states == {
        0: optuna.trial.TrialState.COMPLETE,
        1: optuna.trial.TrialState.PRUNED,
        2: optuna.trial.TrialState.PRUNED,
    }
    assert search._ot_study.trials[1].intermediate_values == {1: 0.1}


def test_scheduler_registry_builds_configured_schedulers(write_sweep):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    from orchestrator.config import load_sweep
    from orchestrator.tuning.schedulers import build_scheduler

    path = write_sweep("train: {epochs: 9}\n")
    asha = build_scheduler(load_sweep(path, ["stopping.scheduler={kind: asha, grace_period: 3}"]))
    assert isinstance(asha, ASHAScheduler)
    # rungs at 3 and 9 epochs for reduction factor 3, max_t 9
    assert sorted(m for m, _ in asha._brackets[0]._rungs) == [3, 9]
    median = build_scheduler(load_sweep(path, ["stopping.scheduler={kind: median}"]))
    assert isinstance(median, MedianStoppingRule)
    assert isinstance(
        build_scheduler(load_sweep(path, ["stopping.scheduler={kind: none}"])), FIFOScheduler
    )

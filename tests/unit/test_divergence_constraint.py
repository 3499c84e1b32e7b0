"""A diverged trial told to the sampler as infeasible (``sweep.divergence_as: constraint``)
vs as PRUNED: the share of suggestions, after the random start-up trials, that land in a
region where training deterministically diverges (regression task space; lr x weight above
a threshold), over several seeds, through the project's searcher (SweepSearch) as a sweep
wires it. No training: each trial's curve is a function of its parameters."""

from __future__ import annotations

import math

import pytest

SWEEP = """\
name: con
task: {{kind: regression}}
objective: {{metric: val/mse, mode: min}}
space:
  optim.lr: {{float: [1.0e-4, 1.0], log: true}}
  loss.weight.mse: {{float: [0.1, 10.0], log: true}}
sweep: {{sampler: {sampler}, divergence_as: {mode}}}
"""

#: lr x weight above this diverges; the objective improves towards 0.03, so a sampler that
#: cannot see the divergence is drawn over the edge
EDGE = 0.09


def share_inside(write_sweep, sampler: str, mode: str, seed: int, trials: int, startup: int):
    from orchestrator.config import load_sweep
    from orchestrator.search_space.space import SearchSpace
    from orchestrator.tuning.runner import optuna_quiet
    from orchestrator.tuning.searcher import SweepSearch

    optuna_quiet()
    text = SWEEP.format(sampler=sampler.replace("SEED", str(seed)), mode=mode)
    config = load_sweep(write_sweep(base=text, name=f"{mode}-{seed}.yaml"))
    search = SweepSearch(
        space=SearchSpace(config),
        metric="val/mse",
        mode="min",
        sampler=config.sweep.sampler.build(concurrent=False, space=dict(config.space)),
        divergence_as=config.sweep.divergence_as,
        reads_constraints=config.sweep.sampler.reads_constraints,
    )
    inside = 0
    for i in range(trials):
        tid = f"t{i}"
        p = search.suggest(tid)
        product = p["optim.lr"] * p["loss.weight.mse"]
        value = 0.05 + 0.01 * (math.log10(product) - math.log10(0.03)) ** 2
        search.on_trial_result(tid, {"val/mse": value, "training_iteration": 1})
        if product > EDGE:
            inside += i >= startup
            # the nonfinite rule's stop: the objective is NaN, the reason is set
            result = {"val/mse": math.nan, "orch.stop_reason": "nonfinite"}
        else:
            result = {"val/mse": value, "training_iteration": 2}
        search.on_trial_complete(tid, result)
    return inside / (trials - startup), search.study


def test_gp_steers_away_from_diverging_region_only_with_the_constraint(write_sweep):
    gp = "{kind: gp, seed: SEED, n_startup_trials: 4}"
    pruned, constrained = [], []
    for seed in range(3):
        pruned.append(share_inside(write_sweep, gp, "pruned", seed, 10, 4)[0])
        share, study = share_inside(write_sweep, gp, "constraint", seed, 10, 4)
        constrained.append(share)
        diverged = [t for t in study.trials if t.constraints.get("orch.diverged") == 1.0]
        assert diverged and all(t.state.name == "COMPLETE" for t in diverged)
    # measured: PRUNED 0.92, constraint 0.05 (5 seeds x 30 trials); GP ignores pruned trials
    assert sum(constrained) / 3 < sum(pruned) / 3 - 0.3, (pruned, constrained)


def test_tpe_already_ranks_pruned_trials_last_so_the_constraint_changes_nothing(write_sweep):
    # Optuna 5's TPE puts PRUNED and infeasible trials both in its "bad" group: the same
    # suggestions either way (docs/search.md)
    tpe = "{kind: tpe, seed: SEED, n_startup_trials: 5}"
    for seed in range(2):
        a, study_a = share_inside(write_sweep, tpe, "pruned", seed, 20, 5)
        b, study_b = share_inside(write_sweep, tpe, "constraint", seed, 20, 5)
        assert [t.params for t in study_a.trials] == [t.params for t in study_b.trials]
        assert a == b
        states = {t.state.name for t in study_a.trials if t.values is None}
        assert states <= {"PRUNED"}


@pytest.mark.parametrize("kind", ["random", "qmc"])
def test_samplers_without_constraints_get_pruned_trials(write_sweep, kind):
    _, study = share_inside(write_sweep, f"{{kind: {kind}, seed: SEED}}", "constraint", 0, 8, 0)
    for t in study.trials:
        diverged = t.constraints.get("orch.diverged") == 1.0
        assert t.state.name == ("PRUNED" if diverged else "COMPLETE")

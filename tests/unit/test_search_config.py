"""``sweep.sampler`` kinds, ``sweep.start_from`` and ``sweep.warm_start``: what validation
accepts and the one-line errors for what a sampler cannot search."""

from __future__ import annotations

import pytest

from orchestrator.config import load_sweep
from orchestrator.config.models import SAMPLERS, ParamSpec
from orchestrator.errors import ConfigErrors

BASE = """\
name: t
task: {kind: regression}
objective: {metric: val/mse, mode: min}
space:
  loss.reduction: {choice: [mean, sum]}
  loss.weight.l1: {float: [0.0, 1.0], when: {loss.reduction: [sum]}}
  optim.lr: {float: [1.0e-3, 1.0e-1], log: true}
  batch.effective: {choice: [16, 32]}
"""


def errors(write_sweep, extra: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_sweep(write_sweep(extra, base=base))
    return [str(e) for e in info.value.errors]


def test_every_kind_is_registered_and_builds_its_optuna_sampler(write_sweep):
    import optuna

    expected = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "qmc": optuna.samplers.QMCSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "nsga3": optuna.samplers.NSGAIIISampler,
        "grid": optuna.samplers.GridSampler,
        "random": optuna.samplers.RandomSampler,
    }
    assert set(SAMPLERS.names()) == set(expected)
    space = {"optim.lr": ParamSpec.model_validate({"choice": [0.1, 0.01]})}
    for kind, cls in expected.items():
        sampler = SAMPLERS.get(kind).model_validate({"kind": kind, "seed": 3})
        assert isinstance(sampler.build(concurrent=False, space=space), cls), kind


def test_unknown_sampler_option_is_rejected_per_kind(write_sweep):
    (msg,) = errors(write_sweep, "sweep: {sampler: {kind: gp, population_size: 4}}\n")
    assert "sweep.sampler.population_size" in msg and "n_startup_trials" in msg


def test_cmaes_names_the_categorical_and_the_conditional_key(write_sweep):
    msgs = errors(write_sweep, "sweep: {sampler: {kind: cmaes}}\n")
    assert any("space.loss.reduction" in m and "CMA-ES cannot search a choice" in m for m in msgs)
    assert any("space.loss.weight.l1.when" in m and "conditional" in m for m in msgs)
    assert any("space.batch.effective" in m for m in msgs)


def test_grid_needs_finite_values_and_at_most_its_points(write_sweep):
    msgs = errors(write_sweep, "sweep: {sampler: {kind: grid}}\n")
    assert any("space.optim.lr" in m and "grid needs finite values" in m for m in msgs)
    finite = """\
name: t
task: {kind: regression}
objective: {metric: val/mse, mode: min}
space:
  loss.reduction: {choice: [mean, sum]}
  optim.lr: {float: [0.01, 0.03], step: 0.01}
  train.epochs: {int: [1, 3]}
"""
    # 2 x 3 x 3 = 18 points
    (msg,) = errors(write_sweep, "sweep: {num_samples: 19, sampler: {kind: grid}}\n", finite)
    assert "sweep.num_samples" in msg and "grid has 18 points" in msg
    config = load_sweep(
        write_sweep("sweep: {num_samples: 18, sampler: {kind: grid}}\n", base=finite)
    )
    sampler = config.sweep.sampler.build(concurrent=False, space=dict(config.space))
    assert sampler._search_space["optim.lr"] == [0.01, 0.02, 0.03]
    assert sampler._search_space["train.epochs"] == [1, 2, 3]


def test_multi_objective_only_where_the_sampler_supports_it(write_sweep):
    base = """\
name: t
task: {kind: regression}
objective: [{metric: val/mse, mode: min}, {metric: train/raw_mse, mode: min}]
space:
  optim.lr: {float: [1.0e-3, 1.0e-1], log: true}
"""
    (msg,) = errors(write_sweep, "sweep: {sampler: {kind: cmaes}}\n", base)
    assert "sweep.sampler.kind" in msg and "one objective" in msg
    for kind in ("tpe", "gp", "nsga2", "nsga3", "qmc", "random"):
        load_sweep(write_sweep(f"sweep: {{sampler: {{kind: {kind}}}}}\n", base=base))


def test_start_from_values_are_checked_against_the_space(write_sweep):
    ok = load_sweep(
        write_sweep(
            "sweep:\n  start_from:\n    - {optim.lr: 0.01, loss.reduction: sum, "
            "loss.weight.l1: 0.5}\n    - {optim.lr: 0.002}\n",
            base=BASE,
        )
    )
    assert ok.sweep.start_from[1] == {"optim.lr": 0.002}
    msgs = errors(
        write_sweep,
        "sweep:\n  start_from:\n    - {optim.lr: 0.5}\n    - {optim.lrr: 0.01}\n"
        "    - {loss.weight.l1: 0.5}\n    - {loss.reduction: max}\n",
    )
    assert len(msgs) == 4
    assert "sweep.start_from.[0].optim.lr: out of range [0.001, 0.1], got 0.5" in msgs[0]
    assert "[1].optim.lrr: not a key of space (did you mean 'optim.lr'?)" in msgs[1]
    assert "sweep.start_from.[2].loss.weight.l1: inactive" in msgs[2]
    assert "sweep.start_from.[3].loss.reduction: must be one of ['mean', 'sum']" in msgs[3]


def test_start_from_batch_combination_must_be_possible(write_sweep):
    base = BASE.replace("effective: {choice: [16, 32]}", "effective: {choice: [12, 16]}")
    # 3 workers x micro 4: 12 is one step, 16 is not a whole number of micro-batches
    (msg,) = errors(
        write_sweep,
        "resources: {workers: 3}\nbatch: {micro: 4}\n"
        "sweep: {start_from: [{batch.effective: 12}, {batch.effective: 16}]}\n",
        base,
    )
    assert "sweep.start_from.[1]" in msg and "16" in msg


def test_warm_start_needs_exactly_one_source(write_sweep):
    (msg,) = errors(write_sweep, "sweep: {warm_start: {sweep_dir: a, experiment: b}}\n")
    assert "exactly one of sweep_dir or experiment" in msg
    config = load_sweep(write_sweep("sweep: {warm_start: {experiment: old}}\n", base=BASE))
    assert config.sweep.warm_start is not None and config.sweep.warm_start.experiment == "old"


def test_grid_start_points_must_be_whole_grid_points(write_sweep):
    base = """\
name: t
task: {kind: regression}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [0.01, 0.03], step: 0.01}
  loss.reduction: {choice: [mean, sum]}
"""
    msgs = errors(
        write_sweep,
        "sweep: {num_samples: 4, sampler: {kind: grid}, start_from: [{optim.lr: 0.02}, "
        "{optim.lr: 0.02, loss.reduction: sum}]}\n",
        base,
    )
    assert len(msgs) == 1 and "sweep.start_from.[0]" in msgs[0]
    assert "missing ['loss.reduction']" in msgs[0]

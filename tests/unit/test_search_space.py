"""Search spaces: conditions, sampling with Optuna, derived batch plans and space checks."""

from __future__ import annotations

import optuna
import pytest

from orchestrator.config import load_sweep
from orchestrator.config.batch import batch_problem, plan_batch
from orchestrator.config.conditions import evaluation_order, find_cycle, is_active
from orchestrator.config.models import ParamSpec
from orchestrator.errors import ConfigErrors
from orchestrator.search_space import SearchSpace, apply_params

COND = """\
space:
  loss.cls: {choice: [vfl, ce]}
  loss.ce.bg_weight: {float: [1.0e-4, 1.0], log: true, when: {loss.cls: [ce]}}
  optim.lr: {float: [1.0e-5, 1.0e-3], log: true}
"""


def spec(**kw) -> ParamSpec:
    return ParamSpec.model_validate(kw)


def test_plan_batch_derives_accumulation():
    # 32 samples per step = micro 4 x 2 workers x accumulation 4
    assert plan_batch(32, 4, 2).accum == 4
    assert plan_batch(16, 16, 1).accum == 1


def test_batch_problems_are_named():
    assert "not a multiple" in batch_problem(24, 5, 1)
    assert "exceeds the effective batch 8" in batch_problem(8, 8, 2)
    assert batch_problem(16, 4, 2) is None
    with pytest.raises(ValueError, match="not a multiple"):
        plan_batch(10, 4, 1)


def test_conditional_parameter_absent_when_condition_false():
    config_spec = {
        "loss.cls": spec(choice=["vfl", "ce"]),
        "loss.ce.bg_weight": spec(float=[1e-4, 1.0], when={"loss.cls": ["ce"]}),
    }
    assert is_active(config_spec["loss.ce.bg_weight"], {"loss.cls": "ce"})
    assert not is_active(config_spec["loss.ce.bg_weight"], {"loss.cls": "vfl"})
    assert not is_active(config_spec["loss.ce.bg_weight"], {})


def test_sampled_trials_include_conditional_param_only_for_its_branch(write_sweep):
    config = load_sweep(write_sweep(COND))
    space = SearchSpace(config)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        constants = space(trial)
        seen.add(trial.params["loss.cls"])
        assert ("loss.ce.bg_weight" in trial.params) == (trial.params["loss.cls"] == "ce")
        assert 1e-5 <= trial.params["optim.lr"] <= 1e-3
        # default batch 16 / micro 4 / 1 worker -> accumulation 4
        assert constants["orch.accum"] == 4 and constants["orch.effective_batch"] == 16
        study.tell(trial, 0.0)
    assert seen == {"vfl", "ce"}


def test_impossible_sampled_batch_is_skipped_with_reason(write_sweep):
    config = load_sweep(
        write_sweep(
            "space:\n  batch.effective: {choice: [8, 12]}\n  batch.micro: {choice: [4, 8]}\n"
            "resources: {workers: 2}\n"
        )
    )
    space = SearchSpace(config)
    assert space.derived({"batch.effective": 8, "batch.micro": 4}) == {
        "orch.effective_batch": 8,
        "orch.micro_batch": 4,
        "orch.accum": 1,
        "orch.world_size": 2,
        "orch.lr_scaled": 1e-4,  # lr_scaling: none
    }
    skipped = space.derived({"batch.effective": 12, "batch.micro": 4})
    assert "not a multiple" in skipped["orch.skip_reason"]


def test_all_batch_combinations_impossible_is_rejected_before_start(write_sweep):
    with pytest.raises(ConfigErrors, match=r"no combination of batch\.effective"):
        load_sweep(
            write_sweep("space:\n  batch.micro: {choice: [16, 32]}\nbatch: {effective: 8}\n")
        )
    with pytest.raises(ConfigErrors, match="cannot be combined"):
        load_sweep(write_sweep("batch: {effective: 10, micro: 4}\n"))


def test_evaluation_order_puts_parents_first_and_finds_cycles():
    params = {
        "b": spec(float=[0, 1], when={"a": ["x"]}),
        "a": spec(choice=["x", "y"]),
        "c": spec(float=[0, 1]),
    }
    assert evaluation_order(params) == ["a", "b", "c"]
    cyclic = {"a": spec(choice=[1, 2], when={"b": [1]}), "b": spec(choice=[1, 2], when={"a": [1]})}
    assert find_cycle(cyclic) == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            "space:\n  loss.weight.clss: {float: [1, 2]}\n",
            "not a hyperparameter of section 'loss' (did you mean loss.weight.cls?)",
        ),
        ("space:\n  model.depth: {int: [1, 2]}\n", "space keys are dotted paths"),
        ("space:\n  batch.micro: {float: [2, 8]}\n", "is an integer"),
        ("space:\n  loss.focal.alpha: {float: [0.5, 1.5]}\n", "value 1.5 from this range"),
        ("space:\n  optim.lr: {float: [0, 1], log: true}\n", "log scale needs low > 0"),
        ("space:\n  optim.lr: {float: [0.1, 0.01]}\n", "low must be < high"),
        ("space:\n  optim.lr: {choice: []}\n", "at least one value"),
        ("space:\n  optim.lr: {float: [0.1, 0.2], choice: [1]}\n", "exactly one of"),
        (
            "space:\n  loss.cls: {choice: [vfl, ce]}\n"
            "  loss.ce.bg_weight: {float: [0.1, 1], when: {loss.clss: [ce]}}\n",
            "condition names a parameter that is not in space (did you mean 'loss.cls'?)",
        ),
        (
            "space:\n  loss.cls: {choice: [vfl, ce]}\n"
            "  loss.ce.bg_weight: {float: [0.1, 1], when: {loss.cls: [cee]}}\n",
            "loss.cls can never take these values",
        ),
        (
            "space:\n  loss.cls: {choice: [vfl, ce], when: {loss.aux: [true]}}\n"
            "  loss.aux: {choice: [true, false], when: {loss.cls: [ce]}}\n",
            "circular condition",
        ),
    ],
)
def test_space_errors(write_sweep, extra, needle):
    with pytest.raises(ConfigErrors) as info:
        load_sweep(write_sweep(extra))
    assert needle in str(info.value)


def test_apply_params_sets_dotted_keys_and_ignores_orch_keys():
    hyper = {"loss": {"weight": {"cls": 1.0}}, "optim": {"lr": 0.1}}
    out = apply_params(hyper, {"loss.weight.cls": 3.0, "optim.lr": 0.5, "orch.accum": 2})
    assert out == {"loss": {"weight": {"cls": 3.0}}, "optim": {"lr": 0.5}}
    assert hyper["loss"]["weight"]["cls"] == 1.0  # the input is not modified

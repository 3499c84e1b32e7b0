"""``stopping.scheduler.kind: pbt | pb2`` (#14): the checks before a sweep starts, the
mapping to Ray's schedulers, values kept in their space, ``hp/`` metrics, a diverged member
handed to the scheduler, and a clone's optimizer running with its own settings."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from orchestrator.config import load_sweep
from orchestrator.config.metrics import in_force_metrics
from orchestrator.config.models import ParamSpec
from orchestrator.errors import ConfigErrors

BASE = """\
name: pbt
task: {kind: regression, num_train: 64, num_val: 16}
batch: {effective: 16, micro: 16}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [0.0001, 0.1], log: true}
  loss.weight.l1: {float: [0.0, 1.0], step: 0.25}
  loss.weight.mse: {int: [1, 4]}
  loss.reduction: {choice: [mean, sum]}
  batch.micro: {choice: [8, 16]}
sweep: {num_samples: 4}
"""


def _load(tmp_path, text):
    path = tmp_path / "pbt.yaml"
    path.write_text(text)
    return load_sweep(path)


def _errors(tmp_path, text) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        _load(tmp_path, text)
    return [e.render() for e in info.value.errors]


def _sweep(scheduler: str, train: str = "{epochs: 6, checkpoint: {every: 1, keep: 3}}") -> str:
    return BASE + f"train: {train}\nstopping: {{scheduler: {scheduler}}}\n"


def test_by_default_pbt_changes_every_float_and_int_range_but_the_batch(tmp_path):
    config = _load(tmp_path, _sweep("{kind: pbt, perturbation_interval: 2}"))
    # the choices are left alone by default; batch.* never changes inside a run
    assert config.stopping.scheduler.mutated_keys(dict(config.space)) == [
        "optim.lr",
        "loss.weight.l1",
        "loss.weight.mse",
    ]


def test_checkpoints_must_be_on_and_taken_and_kept_at_the_perturbation_points(tmp_path):
    (off,) = _errors(tmp_path, _sweep("{kind: pbt}", "{epochs: 6, checkpoint: null}"))
    assert "train.checkpoint: stopping.scheduler.kind pbt clones members' checkpoints" in off
    errors = _errors(
        tmp_path,
        _sweep("{kind: pbt, perturbation_interval: 3}", "{epochs: 9, checkpoint: {every: 2}}"),
    )
    assert any(
        "train.checkpoint.every: must divide stopping.scheduler.perturbation_interval (3)" in e
        and e.endswith("got 2")
        for e in errors
    ), errors
    # interval 4, every 2: a donor writes 2 more checkpoints before the next perturbation,
    # so its cloned one survives only with keep >= 4 / 2 + 1 = 3
    (keep,) = _errors(
        tmp_path,
        _sweep(
            "{kind: pbt, perturbation_interval: 4}", "{epochs: 9, checkpoint: {every: 2, keep: 2}}"
        ),
    )
    assert "train.checkpoint.keep: must be >= 3" in keep and keep.endswith("got 2")
    (late,) = _errors(
        tmp_path,
        _sweep("{kind: pbt, perturbation_interval: 6}", "{epochs: 6, checkpoint: {keep: 7}}"),
    )
    assert "stopping.scheduler.perturbation_interval: must be < train.epochs (6)" in late


def test_mutate_names_space_keys_that_can_change_inside_a_run(tmp_path):
    text = _sweep("{kind: pbt, mutate: [optim.lr, optim.lrr, batch.micro]}")
    errors = _errors(tmp_path, text)
    assert any("names a key that is not in space (did you mean 'optim.lr'?), got 'optim.lrr'" in e
               for e in errors), errors  # fmt: skip
    assert any("batch.micro cannot change inside a run: the batch plan" in e for e in errors)
    # a categorical key may be resampled by PBT ...
    ok = _load(tmp_path, _sweep("{kind: pbt, mutate: [loss.reduction]}"))
    assert ok.stopping.scheduler.mutated_keys(dict(ok.space)) == ["loss.reduction"]
    # ... not by PB2, which models continuous values
    (pb2,) = _errors(tmp_path, _sweep("{kind: pb2, mutate: [optim.lr, loss.reduction]}"))
    assert "stopping.scheduler.mutate: loss.reduction is a choice; pb2 models continuous" in pb2


def test_a_conditional_key_a_searched_effective_batch_and_a_lone_member_are_refused(tmp_path):
    text = BASE.replace(
        "  batch.micro: {choice: [8, 16]}\n",
        "  batch.effective: {choice: [16, 32]}\n"
        "  loss.weight.l1x: {float: [0.0, 1.0], when: {loss.reduction: [sum]}}\n",
    )
    text = text.replace("loss.weight.l1x", "loss.weight.l1").replace(
        "  loss.weight.l1: {float: [0.0, 1.0], step: 0.25}\n", ""
    )
    text = text.replace("num_samples: 4", "num_samples: 1")
    text += "train: {epochs: 6, checkpoint: {every: 1, keep: 3}}\n"
    text += "stopping: {scheduler: {kind: pbt, mutate: [optim.lr, loss.weight.l1]}}\n"
    errors = _errors(tmp_path, text)
    assert any("loss.weight.l1 is conditional (when:)" in e for e in errors), errors
    assert any("space.batch.effective: cannot be searched with pbt" in e for e in errors)
    assert any("sweep.num_samples: is the population of pbt and must be >= 2" in e for e in errors)


def test_multi_worker_trials_are_refused(tmp_path):
    text = _sweep("{kind: pbt}") + "resources: {workers: 2}\n"
    text = text.replace("batch: {effective: 16, micro: 16}", "batch: {effective: 16, micro: 8}")
    text = text.replace("  batch.micro: {choice: [8, 16]}\n", "")
    (error,) = _errors(tmp_path, text)
    assert "resources.workers: pbt runs one-worker trials" in error


def test_pbt_is_built_as_rays_scheduler_with_the_space_as_mutations(tmp_path):
    from ray.tune.search.sample import Float, Integer

    from orchestrator.tuning.population_scheduler import KeepInSpace, SweepPBT

    config = _load(
        tmp_path,
        _sweep(
            "{kind: pbt, perturbation_interval: 2, quantile_fraction: 0.5, "
            "resample_probability: 0.1, perturbation_factors: [1.5, 0.5], burn_in: 2, "
            "mutate: [optim.lr, loss.weight.mse, loss.reduction]}"
        ),
    )
    pbt = config.stopping.scheduler.build_for(config)
    assert isinstance(pbt, SweepPBT)
    assert (pbt._metric, pbt._mode, pbt._time_attr) == ("val/mse", "min", "training_iteration")
    assert pbt._perturbation_interval == 2 and pbt._burn_in_period == 2
    assert pbt._quantile_fraction == 0.5 and pbt._resample_probability == 0.1
    assert pbt._perturbation_factors == (1.5, 0.5)
    assert pbt._synch is True and pbt.last_epoch == 6
    lr = pbt._hyperparam_mutations["optim.lr"]
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (0.0001, 0.1)
    assert type(lr.sampler).__name__ == "_LogUniform"
    mse = pbt._hyperparam_mutations["loss.weight.mse"]
    # Tune's randint excludes its upper bound: [1, 4] in the space is randint(1, 5)
    assert isinstance(mse, Integer) and (mse.lower, mse.upper) == (1, 5)
    assert pbt._hyperparam_mutations["loss.reduction"] == ["mean", "sum"]
    assert isinstance(pbt._custom_explore_fn, KeepInSpace)


def test_pb2_gets_the_ranges_as_bounds(tmp_path):
    from orchestrator.tuning.population_scheduler import SweepPB2

    config = _load(tmp_path, _sweep("{kind: pb2, synchronous: false}"))
    pb2 = config.stopping.scheduler.build_for(config)
    assert isinstance(pb2, SweepPB2) and pb2._synch is False
    assert pb2._hyperparam_bounds == {
        "optim.lr": [0.0001, 0.1],
        "loss.weight.l1": [0.0, 1.0],
        "loss.weight.mse": [1.0, 4.0],
    }


def test_perturbed_values_are_put_back_into_their_space():
    from orchestrator.tuning.population_scheduler import KeepInSpace

    keep = KeepInSpace(
        {
            "alpha": ParamSpec.model_validate({"float": [0.25, 0.9]}),
            "w": ParamSpec.model_validate({"float": [0.0, 1.0], "step": 0.25}),
            "n": ParamSpec.model_validate({"int": [1, 4]}),
            "cls": ParamSpec.model_validate({"choice": ["a", "b"]}),
        }
    )
    # 0.9 x 1.2 = 1.08 -> the upper bound 0.9; 0.3 x 1.2 = 0.36 -> onto the 0.25 grid from
    # 0: round(1.44) x 0.25 = 0.25; the int 4 x 1.2 = 4.8 -> the bound 4; a choice is kept
    out = keep({"alpha": 1.08, "w": 0.36, "n": 4.8, "cls": "b", "other": 7})
    assert out == {"alpha": 0.9, "w": 0.25, "n": 4, "cls": "b", "other": 7}
    # 0.1 -> 0.25; 0.9 -> round(3.6) x 0.25 = 1.0; 1 x 0.8 = 0.8 -> the bound 1
    assert keep({"alpha": 0.1, "w": 0.9, "n": 0.8, "cls": "a"}) == {
        "alpha": 0.25, "w": 1.0, "n": 1, "cls": "a",
    }  # fmt: skip


def test_values_in_force_become_hp_metrics_choices_by_index():
    params = {"optim.lr": 0.01, "loss.cls": "focal", "train.ema_on": True, "loss.n": 3}
    space = {"loss.cls": {"choice": ["vfl", "focal"]}, "train.ema_on": {"choice": [False, True]}}
    keys = ["optim.lr", "loss.cls", "train.ema_on", "loss.n", "absent"]
    assert in_force_metrics(params, keys, space) == {
        "hp/optim.lr": 0.01,
        "hp/loss.cls": 1.0,
        "hp/train.ema_on": 1.0,
        "hp/loss.n": 3.0,
    }


class _Detector:
    def __init__(self, fires_at: int) -> None:
        self.fires_at = fires_at

    def check(self, history):
        from orchestrator.divergence import StopReason

        if len(history) >= self.fires_at:
            return StopReason("spike", "train/loss spiked", len(history) - 1)
        return None


def test_a_diverged_member_is_handed_to_the_population_scheduler_not_stopped():
    from orchestrator.tuning.stopper import DivergenceStopper

    stopper = DivergenceStopper(_Detector(fires_at=2), replace_diverged=True)
    assert stopper("a", {"orch.epoch": 1, "train/loss": 1.0}) is False
    result = {"orch.epoch": 2, "train/loss": 9.0, "orch.step": 20}
    assert stopper("a", result) is False
    assert result["orch.pbt.replaced"] == "spike: train/loss spiked"
    assert not any(k.startswith("orch.stop") for k in result)  # no stop tag on a run going on
    # the trial stopped itself for a divergence: the same
    own = {"orch.epoch": 1, "orch.stop_reason": "nonfinite", "orch.stop_detail": "NaN"}
    assert stopper("b", own) is False and own["orch.pbt.replaced"] == "nonfinite: NaN"
    # what a clone cannot fix still stops the trial
    error = {"orch.stop_reason": "error", "orch.stop_detail": "ValueError"}
    assert stopper("c", error) is True and error["orch.stop_reason"] == "error"
    # without a population scheduler, a divergence stops the trial as always
    plain = DivergenceStopper(_Detector(fires_at=1))
    stopped = {"orch.epoch": 1, "train/loss": 1.0}
    assert plain("a", stopped) is True and stopped["orch.stop_reason"] == "spike"


def test_a_clone_is_judged_on_its_donors_history_up_to_the_cloned_epoch():
    from orchestrator.tuning.stopper import DivergenceStopper

    stopper = DivergenceStopper(_Detector(fires_at=99), replace_diverged=True)
    for epoch, loss in enumerate([5.0, 4.0, 3.0], start=1):
        stopper("donor", {"orch.epoch": epoch, "train/loss": loss})
    for epoch, loss in enumerate([9.0, 8.0], start=1):
        stopper("member", {"orch.epoch": epoch, "train/loss": loss})
    clone = {"orch.pbt.cloned_from": "donor", "orch.restored_from_epoch": 2}
    stopper("member", {**clone, "orch.epoch": 3, "train/loss": 3.5})
    assert [r["train/loss"] for r in stopper.histories["member"]] == [5.0, 4.0, 3.5]
    stopper("member", {**clone, "orch.epoch": 4, "train/loss": 3.0})  # not copied again
    assert [r["train/loss"] for r in stopper.histories["member"]] == [5.0, 4.0, 3.5, 3.0]


class _Trial:
    """What PBT reads of a Tune trial (hashable, as Tune's are)."""

    def __init__(self, name: str, path: str) -> None:
        self.trial_id = self.experiment_tag = name
        self.path = path

    def is_finished(self) -> bool:
        return self.trial_id == "done"


def _population(tmp_path):
    from ray.tune.schedulers.pbt import _PBTTrialState

    from orchestrator.tuning.population_scheduler import SweepPBT

    pbt = SweepPBT(
        last_epoch=6, metric="val/mse", mode="min", hyperparam_mutations={"optim.lr": [0.1, 0.2]}
    )
    trials = {}
    for name in ("sick", "good", "best", "done"):
        folder = tmp_path / name
        folder.mkdir()
        trials[name] = _Trial(name, str(folder))
        pbt._trial_state[trials[name]] = _PBTTrialState(trials[name])
    return pbt, trials


def test_the_scheduler_clones_the_best_member_into_a_diverged_one(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    pbt, t = _population(tmp_path)
    # scores are mode-adjusted (min: -val/mse); "done" is finished, "good" has no checkpoint
    for name, score, checkpoint in [
        ("good", -2.0, None),
        ("best", -1.0, "ckpt"),
        ("done", 0.0, "c"),
    ]:
        state = pbt._trial_state[t[name]]
        state.last_score, state.last_checkpoint = score, checkpoint
    cloned = []
    pbt._exploit = lambda controller, trial, donor: cloned.append((trial.trial_id, donor.trial_id))
    decision = pbt.on_trial_result(
        None, t["sick"], {"orch.pbt.replaced": "spike: x", "orch.epoch": 3}
    )
    assert decision == TrialScheduler.NOOP
    assert cloned == [("sick", "best")] and pbt.replaced == {"sick": ["best"]}
    assert pbt._trial_state[t["sick"]].last_score == -math.inf


def test_without_a_member_to_clone_a_diverged_one_stops_with_its_reason(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from orchestrator.tuning.trial_end import read_decision

    pbt, t = _population(tmp_path)
    result = {"orch.pbt.replaced": "spike: train/loss spiked", "orch.step": 30}
    assert pbt.on_trial_result(None, t["sick"], result) == TrialScheduler.STOP
    decision = read_decision(t["sick"].path)
    assert decision["orch.stop_reason"] == "spike"
    assert decision["orch.stop_detail"].startswith("train/loss spiked (no member had")
    assert decision["orch.stop_step"] == 30


def test_a_members_last_epoch_is_never_perturbed(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    pbt, t = _population(tmp_path)
    result = {"orch.epoch": 6, "training_iteration": 6, "val/mse": 1.0}
    assert pbt.on_trial_result(None, t["good"], result) == TrialScheduler.CONTINUE
    assert pbt._trial_state[t["good"]].last_score is None  # not even ranked


def test_a_clone_restores_the_donors_state_but_trains_with_its_own_optimizer_settings():
    import torch

    from orchestrator.training import checkpoint

    def parts(lr: float, weight_decay: float):
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
        return SimpleNamespace(model=model, optimizer=opt, schedule=schedule)

    donor = parts(lr=0.1, weight_decay=0.01)
    for _ in range(3):  # three steps: the factor is now 1 / 4
        donor.optimizer.step()
        donor.schedule.step()
    assert donor.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    clone = parts(lr=0.02, weight_decay=0.5)
    configured = checkpoint._hyperparameters(clone.optimizer)
    base = list(clone.schedule.base_lrs)
    clone.optimizer.load_state_dict(donor.optimizer.state_dict())
    clone.schedule.load_state_dict(donor.schedule.state_dict())
    checkpoint._keep_configured(clone, configured, base)
    group = clone.optimizer.param_groups[0]
    # the donor's step count and moments, the clone's rate: 0.02 x 1/4, and its decay
    assert clone.schedule.last_epoch == 3 and group["lr"] == pytest.approx(0.005)
    assert group["initial_lr"] == 0.02 and group["weight_decay"] == 0.5
    assert clone.schedule.get_last_lr() == [pytest.approx(0.005)]
    clone.schedule.step()
    assert group["lr"] == pytest.approx(0.02 / 5)
    # a restart of the same trial: nothing changes
    same = parts(lr=0.1, weight_decay=0.01)
    configured, base = checkpoint._hyperparameters(same.optimizer), list(same.schedule.base_lrs)
    same.optimizer.load_state_dict(donor.optimizer.state_dict())
    same.schedule.load_state_dict(donor.schedule.state_dict())
    checkpoint._keep_configured(same, configured, base)
    assert same.optimizer.param_groups[0]["lr"] == donor.optimizer.param_groups[0]["lr"]


def test_the_line_of_clones_behind_a_restored_trial():
    from orchestrator.training.checkpoint import lineage_after

    assert lineage_after(None, "t1") == []
    own = {"trial_id": "t1", "epoch": 4, "lineage": [["t0", 2, "t3"]]}
    assert lineage_after(own, "t1") == [["t0", 2, "t3"]]  # its own checkpoint: no new clone
    assert lineage_after(own, "t2") == [["t0", 2, "t3"], ["t1", 4, "t2"]]
    assert lineage_after({"trial_id": "", "epoch": 1}, "t2") == []  # writer unknown

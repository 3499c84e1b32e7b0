"""Who cut a trial and why: the safe schedulers write it into the trial's folder
(tuning/trial_end.py), with values computed here by hand."""

from __future__ import annotations

import json

from ray.tune.schedulers import TrialScheduler

from orchestrator.tuning.safe_schedulers import SafeASHAScheduler, SafeMedianStoppingRule
from orchestrator.tuning.trial_end import (
    DECISION_FILE,
    FINISHED_FILE,
    ends_trial,
    mark_finished,
    read_decision,
)


class _Trial:
    def __init__(self, trial_id: str, path: str) -> None:
        self.trial_id = trial_id
        self.path = path


class _Controller:
    """What the median rule asks Tune while it has too few samples: nobody is waiting."""

    def get_live_trials(self) -> list:
        return []


def _trials(tmp_path, *ids: str) -> list[_Trial]:
    out = []
    for i in ids:
        (tmp_path / i).mkdir()
        out.append(_Trial(i, str(tmp_path / i)))
    return out


def _result(t: int, value: float) -> dict:
    return {"training_iteration": t, "val/map": value}


def test_asha_records_the_rung_the_value_and_the_cutoff(tmp_path) -> None:
    asha = SafeASHAScheduler(
        time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2
    )
    asha.set_search_properties("val/map", "max")
    a, b = _trials(tmp_path, "a", "b")
    for t in (a, b):
        asha.on_trial_add(None, t)
    assert asha.on_trial_result(None, a, _result(1, 0.8)) == TrialScheduler.CONTINUE
    # rung of epoch 1 holds {a: 0.8}; its cutoff is the 50th percentile = 0.8 > 0.5
    assert asha.on_trial_result(None, b, _result(1, 0.5)) == TrialScheduler.STOP
    assert read_decision(b.path) == {
        "orch.stop_reason": "scheduler",
        "orch.stopped_by": "asha",
        "orch.stop_detail": "ASHA rung at epoch 1: val/map 0.5 below the rung's cutoff 0.8 "
        "(the top 1/2 of 1 trials recorded there continue)",
    }
    assert read_decision(a.path) == {}


def test_asha_stop_at_max_t_is_the_natural_end_not_a_cut(tmp_path) -> None:
    asha = SafeASHAScheduler(
        time_attr="training_iteration", max_t=2, grace_period=1, reduction_factor=2
    )
    asha.set_search_properties("val/map", "min")
    (a,) = _trials(tmp_path, "a")
    asha.on_trial_add(None, a)
    asha.on_trial_result(None, a, _result(1, 0.3))
    assert asha.on_trial_result(None, a, _result(2, 0.2)) == TrialScheduler.STOP
    assert not (tmp_path / "a" / DECISION_FILE).exists()


def test_asha_on_a_min_objective_says_above_and_unflips_the_cutoff(tmp_path) -> None:
    asha = SafeASHAScheduler(
        time_attr="training_iteration", max_t=8, grace_period=2, reduction_factor=2
    )
    asha.set_search_properties("val/loss", "min")
    a, b = _trials(tmp_path, "a", "b")
    for t in (a, b):
        asha.on_trial_add(None, t)
    asha.on_trial_result(None, a, {"training_iteration": 2, "val/loss": 1.5})
    assert (
        asha.on_trial_result(None, b, {"training_iteration": 2, "val/loss": 2.5})
        == TrialScheduler.STOP
    )
    detail = read_decision(b.path)["orch.stop_detail"]
    assert detail.startswith("ASHA rung at epoch 2: val/loss 2.5 above the rung's cutoff 1.5")


def test_median_rule_records_best_value_against_the_median(tmp_path) -> None:
    rule = SafeMedianStoppingRule(
        time_attr="training_iteration", grace_period=1, min_samples_required=2
    )
    rule.set_search_properties("val/map", "max")
    a, b, c = _trials(tmp_path, "a", "b", "c")
    for t in (a, b, c):
        rule.on_trial_add(None, t)
    # a: running mean at t=2 = (0.4 + 0.6) / 2 = 0.5; b: (0.2 + 0.4) / 2 = 0.3
    for trial, values in ((a, (0.4, 0.6)), (b, (0.2, 0.4))):
        for t, v in enumerate(values, 1):
            rule.on_trial_result(_Controller(), trial, _result(t, v))
    assert read_decision(b.path) == {}  # one other trial < min_samples_required
    # c at t=1: its best 0.1 < median(a's 0.4, b's 0.2) = 0.3
    assert rule.on_trial_result(_Controller(), c, _result(1, 0.1)) == TrialScheduler.STOP
    assert read_decision(c.path)["orch.stop_detail"] == (
        "median stopping at epoch 1: best val/map so far 0.1 below the median 0.3 of 2 "
        "other trials' running means"
    )
    assert read_decision(c.path)["orch.stopped_by"] == "median"


def test_a_trial_knows_its_last_report() -> None:
    assert ends_trial({"orch.epoch": 3}, 3)
    assert not ends_trial({"orch.epoch": 2}, 3)
    assert ends_trial({"orch.epoch": 1, "orch.stop_reason": "spike"}, 3)
    assert not ends_trial({}, 3)


def test_mark_finished_merges_the_cut_and_never_overwrites(tmp_path) -> None:
    (tmp_path / DECISION_FILE).write_text(
        json.dumps({"orch.stop_reason": "scheduler", "orch.stop_detail": "rung 1"})
    )
    mark_finished(str(tmp_path), {"orch.epoch": 1, "val/map": 0.1})
    mark = json.loads((tmp_path / FINISHED_FILE).read_text())
    assert mark == {
        "orch.epoch": 1,
        "val/map": 0.1,
        "orch.stop_reason": "scheduler",
        "orch.stop_detail": "rung 1",
    }
    mark_finished(str(tmp_path), {"orch.epoch": 9})
    assert json.loads((tmp_path / FINISHED_FILE).read_text()) == mark

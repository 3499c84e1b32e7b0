"""Our stopping pieces inside a real local Ray Tune run, with tiny function trainables.

* Ray's ASHA promotes a NaN trial through every rung (``NaN < cutoff`` is false); ours cuts
  it at the first rung.
* The divergence stopper stops a trial at the report where a rule fires, writes the reason
  into that result (so callbacks and the trial's last result carry it), and the searcher
  tells Optuna the trial was PRUNED.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

# plain Tune on a 2-CPU Ray of its own: how many trials run at once decides what ASHA sees
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import os

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _nan_or_rising(config: dict[str, Any]) -> None:
    from ray import tune

    for i in range(1, 7):
        tune.report({"score": math.nan if config["q"] == 0 else config["q"] * i})


def _iterations_of_nan_trial(scheduler: Any, tmp_path: Any) -> int:
    from ray import tune

    tuner = tune.Tuner(
        _nan_or_rising,
        # one at a time, the NaN trial last: the rungs hold three finite values when it
        # arrives, so its fate depends only on how NaN is compared
        param_space={"q": tune.grid_search([1, 2, 3, 0])},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    grid = tuner.fit()
    (nan_result,) = [grid[i] for i in range(len(grid)) if grid[i].config["q"] == 0]
    return int(nan_result.metrics["training_iteration"])


def test_plain_asha_lets_a_nan_trial_run_to_the_end_ours_cuts_it_at_the_first_rung(tmp_path):
    from ray.tune.schedulers import ASHAScheduler

    from orchestrator.tuning.safe_schedulers import SafeASHAScheduler

    args = dict(metric="score", mode="max", max_t=6, grace_period=1, reduction_factor=2)
    assert _iterations_of_nan_trial(ASHAScheduler(**args), tmp_path / "plain") == 6
    assert _iterations_of_nan_trial(SafeASHAScheduler(**args), tmp_path / "safe") == 1


def test_median_rule_stops_a_nan_trial_at_its_grace_period(tmp_path):
    from orchestrator.tuning.safe_schedulers import SafeMedianStoppingRule

    rule = SafeMedianStoppingRule(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        grace_period=2,
        min_samples_required=1,
    )
    assert _iterations_of_nan_trial(rule, tmp_path) == 2


SPIKE = [10.0, 9.0, 8.0, 7.0, 30.0, 35.0, 36.0, 37.0]
HEALTHY = [10.0, 9.0, 8.0, 7.0, 6.5, 6.0, 5.8, 5.6]


def _loss_curve(config: dict[str, Any]) -> None:
    from ray import tune

    curve = SPIKE if config["x"] < 0.5 else HEALTHY
    for i, loss in enumerate(curve, start=1):
        tune.report({"train/loss": loss, "val/map": 0.1 * i, "orch.step": 10 * i})


def _space(trial: Any) -> None:
    trial.suggest_float("x", 0.0, 1.0)


def test_divergence_stopper_records_reason_and_optuna_sees_pruned(tmp_path):
    import optuna
    from ray import tune

    from orchestrator.divergence import DivergenceConfig, build_rules
    from orchestrator.tuning.searcher import SweepSearch
    from orchestrator.tuning.stopper import DivergenceStopper

    seen: dict[str, dict[str, Any]] = {}

    class Capture(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # type: ignore[no-untyped-def]
            seen[trial.trial_id] = dict(result)

    search = SweepSearch(
        space=_space,
        metric="val/map",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=3),
    )
    stopper = DivergenceStopper(build_rules(DivergenceConfig(), ("val/map", "max")))
    tuner = tune.Tuner(
        _loss_curve,
        tune_config=tune.TuneConfig(search_alg=search, num_samples=4, max_concurrent_trials=2),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), stop=stopper, callbacks=[Capture()], verbose=0
        ),
    )
    grid = tuner.fit()
    results = [grid[i] for i in range(len(grid))]
    spiky = [r for r in results if r.config["x"] < 0.5]
    healthy = [r for r in results if r.config["x"] >= 0.5]
    assert spiky and healthy, "seed 3 samples both halves"
    for r in spiky:
        # spike (factor 2, patience 2): 30 and 35 are both > 2 x EMA 8.x -> report 6
        assert r.metrics["training_iteration"] == 6
        assert r.metrics["orch.stop_reason"] == "spike"
        assert r.metrics["orch.stop_step"] == 60
        assert "train/loss = 35" in r.metrics["orch.stop_detail"]
        assert seen[r.metrics["trial_id"]]["orch.stop_reason"] == "spike"  # callbacks see it
    for r in healthy:
        assert r.metrics["training_iteration"] == len(HEALTHY)
        assert "orch.stop_reason" not in r.metrics

    states = {t.params["x"] < 0.5: t.state for t in search._ot_study.trials}
    assert states[True] == optuna.trial.TrialState.PRUNED
    assert states[False] == optuna.trial.TrialState.COMPLETE

"""A resumed sweep's Optuna study (its own storage) can be newer than Tune's last snapshot
of the searcher: a trial that ended in between runs again and re-reports its
``finished.json``. The searcher must keep the study's first ending and not crash the sweep
(Optuna raises UpdateFinishedTrialError on a finished trial; seen in the head-pod-loss
test)."""

from __future__ import annotations

SWEEP = """\
name: res
task: {kind: regression}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [1.0e-4, 1.0], log: true}
"""


def _searcher(write_sweep):
    from orchestrator.config import load_sweep
    from orchestrator.search_space.space import SearchSpace
    from orchestrator.tuning.runner import optuna_quiet
    from orchestrator.tuning.searcher import SweepSearch

    optuna_quiet()
    config = load_sweep(write_sweep(base=SWEEP, name="res.yaml"))
    return SweepSearch(
        space=SearchSpace(config),
        metric="val/mse",
        mode="min",
        sampler=config.sweep.sampler.build(concurrent=False, space=dict(config.space)),
    )


def test_a_trial_the_study_already_finished_is_not_told_again(write_sweep):
    search = _searcher(write_sweep)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_result("a", {"val/mse": 0.5, "training_iteration": 1})
    # the study storage holds trial a's ending; the searcher's restored state does not
    search.study.tell(search._ot_trials["a"], 0.25)
    # the re-run reports its finished.json, then completes: neither may raise
    search.on_trial_result("a", {"val/mse": 0.75, "training_iteration": 3})
    search.on_trial_complete("a", {"val/mse": 0.75, "training_iteration": 3})
    # trial b, still running in the study, is told as usual
    search.on_trial_result("b", {"val/mse": 0.4, "training_iteration": 1})
    search.on_trial_complete("b", {"val/mse": 0.3, "training_iteration": 2})
    a, b = search.study.trials
    assert (a.state.name, a.value) == ("COMPLETE", 0.25)
    assert (b.state.name, b.value, b.intermediate_values) == ("COMPLETE", 0.3, {1: 0.4})


def test_a_trial_completed_after_its_report_is_told_once(write_sweep):
    search = _searcher(write_sweep)
    search.suggest("a")
    search.study.tell(search._ot_trials["a"], 0.25)
    search.on_trial_complete("a", {"val/mse": 0.75, "training_iteration": 3})
    (a,) = search.study.trials
    assert a.value == 0.25 and a.user_attrs == {}

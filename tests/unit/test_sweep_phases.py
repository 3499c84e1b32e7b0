"""The phases of ``run_sweep`` on their own, and the one Tuner builder of the search and
the seed repeats (built, not fitted: no Ray cluster)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import yaml

from orchestrator.config import load_sweep
from orchestrator.tuning import runner
from orchestrator.tuning.tuners import REPEATS, SEARCH, TunerFactory

SWEEP = """\
name: phases
task: {kind: regression}
space:
  optim.lr: {float: [0.001, 0.1], log: true}
sweep: {num_samples: 3, max_retries: 2, max_concurrent: 2, dir: DIR}
objective: {metric: val/mse, mode: min}
"""


def config(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("DIR", str(tmp_path / "sweeps")))
    return load_sweep(path)


def _trainable(config: dict) -> None:
    return None


def built(tuner):
    # the Tuner keeps what it was built with on its local tuner until fit()
    local = tuner._local_tuner
    return local._tune_config, local._run_config


def test_search_and_repeats_share_stopper_retries_storage_and_callbacks(tmp_path):
    cfg = config(tmp_path)
    factory = TunerFactory(cfg, _trainable, str(tmp_path / "ray"), None, io.StringIO())
    timer = object()
    search_tune, search_run = built(factory.search([timer]))
    repeat_tune, repeat_run = built(factory.repeats([{"optim.lr": 0.01}, {"optim.lr": 0.02}]))
    assert (search_run.name, repeat_run.name) == (SEARCH, REPEATS)
    assert search_run.storage_path == repeat_run.storage_path == str(tmp_path / "ray")
    for run in (search_run, repeat_run):
        assert run.failure_config.max_failures == 2
        assert type(run.stop).__name__ == "DivergenceStopper"
        names = [type(c).__name__ for c in run.callbacks]
        assert names[:3] == ["FinishedMarks", "JsonLoggerCallback", "ProgressTable"]
    assert search_run.callbacks[-1] is timer  # extra callbacks: the search only
    assert len(repeat_run.callbacks) == 3
    assert (search_tune.num_samples, repeat_tune.num_samples) == (3, 2)
    assert type(search_tune.scheduler).__name__ == "SafeASHAScheduler"
    assert repeat_tune.scheduler is None
    assert search_tune.search_alg.max_concurrent == repeat_tune.search_alg.max_concurrent == 2
    assert factory.path(REPEATS) == str(tmp_path / "ray" / "repeats")


def test_sweep_dir_is_new_with_the_resolved_file_or_the_resumed_one(tmp_path):
    cfg = config(tmp_path)
    new = runner._sweep_dir(cfg, None, None)
    assert new.parent == tmp_path / "sweeps" and new.name.startswith("phases-")
    assert yaml.safe_load((new / "sweep.yaml").read_text())["name"] == "phases"
    assert (new / "sweep.created.json").is_file()  # what `resume` checks the file against
    assert runner._sweep_dir(cfg, tmp_path / "old" / ".." / "old", None) == (tmp_path / "old")
    chosen = runner._sweep_dir(cfg, None, tmp_path / "fixed")  # sweep --dir
    assert chosen == tmp_path / "fixed" and (chosen / "sweep.yaml").is_file()


def test_prepare_data_says_what_runs(tmp_path):
    out = io.StringIO()
    root = runner._prepare_data(config(tmp_path), out, resumed=True)
    assert root == tmp_path / "sweeps" / "data"
    assert out.getvalue() == (
        "Resuming sweep 'phases': 3 trials, task regression, 1 worker(s) per trial\n"
        f"Preparing data under {root} ...\n"
    )


def test_no_tracker_without_tracking(tmp_path):
    cfg = config(tmp_path).model_copy(update={"tracking": SimpleNamespace(enabled=False)})
    assert runner._open_tracker(cfg, tmp_path, None, resumed=False) == (None, None)


def test_rows_are_in_trial_order(tmp_path):
    def result(number: int):
        path = tmp_path / f"trainable_abc{number}_{number}_lr=0.1"
        path.mkdir()
        metrics = {"orch.epoch": 3, "val/mse": 0.5}
        return SimpleNamespace(metrics=metrics, config={"optim.lr": 0.1}, error=None, path=path)

    rows = runner._rows([result(10), result(2), result(1)], None, epochs=3)
    assert [r.trial for r in rows] == ["trial-1", "trial-2", "trial-10"]
    assert [r.trial_id for r in rows] == ["abc1", "abc2", "abc10"]
    assert rows[0].status == "done" and rows[0].epochs == 3 and rows[0].stop_reason == ""

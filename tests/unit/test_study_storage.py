"""Where the sweep's Optuna study is kept, and ``orchestrate dashboard``'s clear errors."""

from __future__ import annotations

import optuna
import pytest

from orchestrator.cli import main
from orchestrator.config import load_sweep
from orchestrator.tuning.study_storage import STUDY_FILE, open_storage, storage_url, study_name

SMOKE = "search_spaces/smoke.yaml"


def test_default_storage_is_a_journal_file_in_the_sweep_folder(tmp_path):
    folder = tmp_path / "smoke-20260101-000000"
    folder.mkdir()
    assert study_name(folder) == "smoke-20260101-000000"
    assert storage_url(None, folder) == str(folder / STUDY_FILE)
    assert storage_url("sqlite:////x/optuna.db", folder) == "sqlite:////x/optuna.db"
    study = optuna.create_study(study_name="s", storage=open_storage(None, folder))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(study_name="s", storage=open_storage(None, folder))
    assert len(again.trials) == 2 and (folder / STUDY_FILE).is_file()


def test_rdb_url_from_the_sweep_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = load_sweep(SMOKE, [f"sweep.optuna_storage={url}"])
    assert config.sweep.optuna_storage == url
    storage = open_storage(config.sweep.optuna_storage, tmp_path)
    assert isinstance(storage, optuna.storages.RDBStorage)


def test_storage_that_is_not_a_url_is_one_clear_error(capsys):
    assert main(["validate", SMOKE, "-o", "sweep.optuna_storage=optuna.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sweep.optuna_storage" in err[0] and "'optuna.db'" in err[0]


@pytest.mark.parametrize(
    ("files", "fragment"),
    [({}, "not a sweep folder"), ({"sweep.yaml": "name: x\n"}, f"no Optuna study ({STUDY_FILE})")],
)
def test_dashboard_on_a_folder_without_a_study_says_why(tmp_path, capsys, files, fragment):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_a_resumed_sweep_fails_the_study_trials_of_trials_it_lost(tmp_path):
    # a trial started after Tune's last snapshot stays RUNNING in the study forever unless
    # the resumed sweep ends it (tuning/runner.py)
    from orchestrator.tuning.runner import _fail_lost_study_trials

    folder = tmp_path / "smoke-20260101-000000"
    folder.mkdir()
    config = load_sweep(SMOKE)
    study = optuna.create_study(study_name=study_name(folder), storage=open_storage(None, folder))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    study.ask()  # the lost one
    _fail_lost_study_trials(config, folder)
    states = [t.state.name for t in optuna.load_study(
        study_name=study_name(folder), storage=open_storage(None, folder)
    ).trials]  # fmt: skip
    assert states == ["COMPLETE", "FAIL"]
    older = tmp_path / "older"  # a sweep folder from before studies were stored
    older.mkdir()
    _fail_lost_study_trials(config, older)

"""Credentials stay out of what a sweep saves and prints: URIs lose their user info, a
command's ``{env.X}`` values are shown as placeholders in ``command.json``, and
``sweep --dir`` recognises its own sweep in a folder and refuses any other."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.config.loader import validate_source
from orchestrator.config.yaml_source import parse_yaml
from orchestrator.errors import OrchestratorError
from orchestrator.redact import mask_userinfo, strip_credentials, strip_userinfo
from orchestrator.tasks.command.config import CommandTaskConfig
from orchestrator.tasks.command.record import write_command_record
from orchestrator.tuning.sweep_folder import FolderPlan, plan_folder
from tests.unit.test_command_runner import FAKE, _run


@pytest.mark.parametrize(
    ("uri", "stripped", "masked"),
    [
        ("http://u:p4ss@h:5000/x?y=1", "http://h:5000/x?y=1", "http://***@h:5000/x?y=1"),
        ("https://tok3n@host", "https://host", "https://***@host"),
        ("postgresql+psycopg2://mlflow:s3cr@t@db:5432/m", "postgresql+psycopg2://t@db:5432/m",
         "postgresql+psycopg2://***@t@db:5432/m"),
        ("http://mlflow:5000", "http://mlflow:5000", "http://mlflow:5000"),
        ("sqlite:////tmp/a@b/mlflow.db", "sqlite:////tmp/a@b/mlflow.db",
         "sqlite:////tmp/a@b/mlflow.db"),
        ("user@example.com", "user@example.com", "user@example.com"),
    ],
)  # fmt: skip
def test_uri_user_info_is_removed_or_masked(uri, stripped, masked):
    # an unencoded "@" in a password is not a valid URI; its tail stays, the secret's head
    # (before the last "@" of the authority) is still gone
    assert strip_userinfo(uri) == stripped
    assert mask_userinfo(uri) == masked


def test_masking_finds_uris_inside_text():
    text = "API request to http://bob:hunter2@127.0.0.1:5000/api/2.0/runs failed; retry"
    assert mask_userinfo(text) == (
        "API request to http://***@127.0.0.1:5000/api/2.0/runs failed; retry"
    )


def test_config_dump_loses_credentials_everywhere_but_keeps_the_rest():
    dump = {"tracking": {"uri": "http://a:b@m:5000", "enabled": True},
            "task": {"data": ["s3://k:s@bucket/x", 3]}, "name": "x"}  # fmt: skip
    assert strip_credentials(dump) == {
        "tracking": {"uri": "http://m:5000", "enabled": True},
        "task": {"data": ["s3://bucket/x", 3]},
        "name": "x",
    }


def _command_task(command: object, cwd: str | None = None) -> CommandTaskConfig:
    return CommandTaskConfig.model_validate(
        {
            "kind": "command",
            "command": command,
            "shell": isinstance(command, str),
            "cwd": cwd,
            "metrics": {"val/map": "m"},
        }
    )


def test_command_record_shows_env_placeholders_not_their_values(tmp_path):
    values = {"optim.lr": 0.001, "env.HF_TOKEN": "hf_planted", "env.SUB": "run7"}
    listed = _command_task(["train", "--lr={optim.lr}", "--token={env.HF_TOKEN}"], "{env.SUB}")
    write_command_record(tmp_path, listed, values, tmp_path / "work")
    record = json.loads((tmp_path / "command.json").read_text())
    assert record == {
        "argv": ["train", "--lr=0.001", "--token={env.HF_TOKEN}"],
        "cwd": str(tmp_path / "work" / "{env.SUB}"),
    }
    shell = _command_task("HF_TOKEN={env.HF_TOKEN} train --lr {optim.lr}")
    write_command_record(tmp_path, shell, values, tmp_path / "work")
    argv = json.loads((tmp_path / "command.json").read_text())["argv"]
    assert argv == ["/bin/sh", "-c", "HF_TOKEN='{env.HF_TOKEN}' train --lr 0.001"]


SHELL_SWEEP = """\
name: ext
task:
  kind: command
  command: "ORCH_TOKEN={{env.ORCH_TEST_PLANTED}} {python} {fake} -c cfg.yml -u optimizer.lr={{optim.lr}} epoches={{train.epochs}} RTDETRCriterionv2.weight_dict.loss_giou={{loss.weight.giou}} output_dir={{trial.work_dir}} fake.epoch_s=0.05"
  shell: true
  metrics: {{val/map: "test_coco_eval_bbox[0]"}}
  poll_s: 0.05
train: {{epochs: 2}}
objective: {{metric: val/map, mode: max}}
space:
  optim.lr: {{float: [1.0e-5, 1.0e-3], log: true}}
  loss.weight.giou: {{float: [1.0, 10.0]}}
tracking: {{enabled: false}}
"""  # noqa: E501


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")
def test_a_real_command_trial_gets_the_secret_but_command_json_does_not(tmp_path, monkeypatch):
    secret = "planted-env-secret-7f3a"
    monkeypatch.setenv("ORCH_TEST_PLANTED", secret)
    text = SHELL_SWEEP.format(python=sys.executable, fake=FAKE)
    reports, trial_dir, _ = _run(tmp_path, {"optim.lr": 1e-4, "loss.weight.giou": 2.0}, text=text)
    assert [r["orch.epoch"] for r in reports] == [1, 2]  # the command ran with the value
    shown = (trial_dir / "command.json").read_text()
    assert secret not in shown and "ORCH_TOKEN='{env.ORCH_TEST_PLANTED}'" in shown
    assert os.environ["ORCH_TEST_PLANTED"] == secret


BASE = """\
name: folder
task: {kind: regression, num_train: 64, num_val: 16, hidden: 8}
train: {epochs: 1}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [1.0e-3, 1.0e-1], log: true}
tracking: {uri: "http://sweeper:planted-pw@127.0.0.1:5000"}
"""


def _config(text: str = BASE):
    return validate_source(parse_yaml(text, "folder.yaml"))


def _save(folder: Path, text: str = BASE) -> None:
    # what run_sweep writes: the dump without credentials
    folder.mkdir(parents=True, exist_ok=True)
    dump = strip_credentials(_config(text).model_dump(by_alias=True, mode="json"))
    (folder / "sweep.yaml").write_text(yaml.safe_dump(dump, sort_keys=False))


def test_dir_plan_start_restart_and_refusals(tmp_path):
    assert plan_folder(tmp_path / "new", _config()) is FolderPlan.START
    (tmp_path / "empty").mkdir()
    assert plan_folder(tmp_path / "empty", _config()) is FolderPlan.START
    _save(tmp_path / "same")
    assert "planted-pw" not in (tmp_path / "same" / "sweep.yaml").read_text()
    # saved without credentials, compared without them: still the same sweep
    assert plan_folder(tmp_path / "same", _config()) is FolderPlan.RESTART
    # another Ray cluster is the same sweep (a retry runs on a new one)
    moved = _config(BASE.replace("tracking:", "sweep: {ray_address: '10.0.0.9:6379'}\ntracking:"))
    assert plan_folder(tmp_path / "same", moved) is FolderPlan.RESTART
    # Tune writes tuner.pkl first and its experiment state with the first snapshot: a driver
    # killed in between left nothing to restore (names as Ray 2.60 writes them)
    tune_dir = tmp_path / "same" / "ray" / "tune"
    tune_dir.mkdir(parents=True)
    (tune_dir / "tuner.pkl").write_bytes(b"x")
    assert plan_folder(tmp_path / "same", _config()) is FolderPlan.RESTART
    (tune_dir / "experiment_state-2026-12-02_15-15-17.json").write_text("{}")
    assert plan_folder(tmp_path / "same", _config()) is FolderPlan.RESUME
    other = _config(BASE.replace("epochs: 1", "epochs: 2"))
    with pytest.raises(OrchestratorError, match=r"sweep \(train\.epochs: saved 1, now 2\)"):
        plan_folder(tmp_path / "same", other)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(OrchestratorError, match=r"not empty and holds no sweep\.yaml"):
        plan_folder(tmp_path / "junk", _config())

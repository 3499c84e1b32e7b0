"""One ``command`` trial without Ray: the fake RT-DETR script's epochs become reports; NaN,
hangs, failures and Tune's stop end the command with their reason and leave no process."""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.loader import validate_source
from orchestrator.config.yaml_source import parse_yaml
from orchestrator.reserved import ERROR_TYPE, STOP_DETAIL, STOP_OUTPUT, STOP_REASON
from orchestrator.training.command_trial import run_command_trial
from orchestrator.training.spec import TrialSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")

FAKE = Path(__file__).resolve().parents[1] / "fake_train" / "train.py"

SWEEP = """\
name: ext
task:
  kind: command
  command: [{python}, {fake}, -c, cfg.yml, -u, "optimizer.lr={{optim.lr}}",
            "epoches={{train.epochs}}",
            "RTDETRCriterionv2.weight_dict.loss_giou={{loss.weight.giou}}",
            "output_dir={{trial.work_dir}}", "fake.epoch_s=0.05", "fake.tag={tag}"{fake_args}]
  metrics: {{val/map: "test_coco_eval_bbox[0]", val/map_50: "test_coco_eval_bbox[1]",
             train/loss: train_loss, train/loss_giou: train_loss_giou}}
  poll_s: 0.05
  grace_s: 2
{task_extra}
loss: {{weight: {{giou: 2.0}}}}
optim: {{lr: 1.0e-4}}
train: {{epochs: 3}}
objective: {{metric: val/map, mode: max}}
space:
  optim.lr: {{float: [1.0e-5, 1.0e-3], log: true}}
  loss.weight.giou: {{float: [1.0, 10.0]}}
tracking: {{uri: "sqlite:////tmp/ext/mlflow.db", experiment: ext-exp}}
"""


def _leftovers(tag: str) -> list[int]:
    """Processes whose command line carries ``tag``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if tag.encode() in cmdline and state != "Z":
                found.append(int(proc.name))
    return found


def _run(
    tmp_path: Path,
    params: dict[str, Any],
    fake_args: str = "",
    task_extra: str = "",
    report: Any = None,
    text: str | None = None,
) -> tuple[list[dict[str, Any]], Path, float]:
    tag = f"orch-test-{uuid.uuid4().hex}"
    text = text or SWEEP.format(
        python=sys.executable, fake=FAKE, tag=tag, fake_args=fake_args, task_extra=task_extra
    )
    config = validate_source(parse_yaml(text, "ext.yaml"))
    spec = TrialSpec(
        sweep=config.model_dump(by_alias=True, mode="json"), params=params, data_root="/nowhere"
    )
    reports: list[dict[str, Any]] = []
    trial_dir = tmp_path / "trial"
    started = time.monotonic()
    try:
        run_command_trial(
            spec,
            report or reports.append,
            trial_id="abc_00001",
            trial_name="trainable_abc_00001",
            trial_dir=str(trial_dir),
        )
    finally:
        elapsed = time.monotonic() - started
        assert _leftovers(tag) == [], "a process of the command outlived the trial"
    return reports, trial_dir, elapsed


def test_each_logged_epoch_is_one_report_with_the_mapped_metrics(tmp_path):
    lr, giou = 1e-5, 2.0  # 1e-05 must reach the script as a float (PyYAML reads "1e-05" as text)
    reports, trial_dir, _ = _run(tmp_path, {"optim.lr": lr, "loss.weight.giou": giou})
    assert [r["orch.epoch"] for r in reports] == [1, 2, 3]
    for e, r in enumerate(reports):
        # the fake script's documented formula, epoch e counted from 0
        assert r["val/map"] == pytest.approx(100 * lr * (e + 1))
        assert r["val/map_50"] == pytest.approx(2 * 100 * lr * (e + 1))
        assert r["train/loss"] == pytest.approx((1 + 0.5 + 0.5 * giou) / (e + 1))
        assert r["train/loss_giou"] == pytest.approx(0.5 * giou / (e + 1))
        assert STOP_REASON not in r
    argv = json.loads((trial_dir / "command.json").read_text())["argv"]
    assert "optimizer.lr=1.0e-05" in argv and f"output_dir={trial_dir / 'work'}" in argv
    assert "Epoch 2:" in (trial_dir / "output.log").read_text()


def test_a_restarted_trial_does_not_read_the_earlier_attempts_epochs(tmp_path):
    params = {"optim.lr": 1e-4, "loss.weight.giou": 2.0}
    first, trial_dir, _ = _run(tmp_path, params)
    # Tune restarts a trial in the same folder; RT-DETR appends to an existing log.txt
    again, _, _ = _run(tmp_path, params)
    assert [r["orch.epoch"] for r in again] == [1, 2, 3]
    assert [r["val/map"] for r in again] == [r["val/map"] for r in first]
    assert len((trial_dir / "work.1" / "log.txt").read_text().splitlines()) == 3
    assert len((trial_dir / "work" / "log.txt").read_text().splitlines()) == 3


def test_a_nan_loss_stops_the_command_with_the_nonfinite_rule(tmp_path):
    reports, _, elapsed = _run(
        tmp_path,
        {"optim.lr": 1e-4, "loss.weight.giou": 8.0},
        # NaN from the 2nd epoch when the giou weight is above 5; 50 epochs if not stopped
        fake_args=', "fake.nan_giou_above=5"',
        task_extra="  stall_timeout_s: 30",
    )
    assert len(reports) == 2
    assert math.isnan(reports[1]["train/loss"]) and reports[1][STOP_REASON] == "nonfinite"
    assert "train/loss" in reports[1][STOP_DETAIL]
    assert elapsed < 20


def test_a_hung_command_is_stopped_by_the_stall_timeout(tmp_path):
    reports, _, elapsed = _run(
        tmp_path,
        {"optim.lr": 1e-4, "loss.weight.giou": 2.0},
        fake_args=', "fake.hang_at=1", "fake.ignore_sigterm=true"',
        task_extra="  stall_timeout_s: 1.0",
    )
    assert [r.get(STOP_REASON) for r in reports] == [None, "timeout"]
    assert "no new epoch in the log for 1 s" in reports[1][STOP_DETAIL]
    assert "since epoch 1" in reports[1][STOP_DETAIL]
    # it ignored SIGTERM, so it was killed after grace_s (2 s); the script would hang 600 s
    assert "hanging" in reports[1][STOP_OUTPUT] and "ignoring SIGTERM" in reports[1][STOP_OUTPUT]
    assert 3.0 <= elapsed < 20


def test_the_total_timeout_bounds_a_slow_command(tmp_path):
    reports, _, elapsed = _run(
        tmp_path,
        {"optim.lr": 1e-4, "loss.weight.giou": 2.0},
        fake_args=', "fake.epoch_s=0.4"',
        task_extra="  timeout_s: 1.0",
    )
    assert reports[-1][STOP_REASON] == "timeout"
    assert "ran longer than task.timeout_s = 1 s" in reports[-1][STOP_DETAIL]
    assert len(reports) - 1 < 3 and elapsed < 10  # cut before its 3 epochs (1.2 s)


def test_a_failing_command_is_an_error_with_its_output_tail(tmp_path):
    reports, _, _ = _run(
        tmp_path, {"optim.lr": 1e-4, "loss.weight.giou": 2.0}, fake_args=', "fake.fail_at=1"'
    )
    assert len(reports) == 2 and STOP_REASON not in reports[0]
    failure = reports[1]
    assert failure[STOP_REASON] == "error" and failure[ERROR_TYPE] == "CommandFailed"
    assert failure[STOP_DETAIL] == (
        "the command exited with code 3 after 1 epoch(s): ValueError: fake failure at epoch 1"
    )
    assert "Traceback (most recent call last):" in failure[STOP_OUTPUT]


def test_fewer_epochs_than_train_epochs_is_recorded(tmp_path):
    text = SWEEP.replace('"epoches={{train.epochs}}"', '"epoches=2"')
    text = text.format(
        python=sys.executable, fake=FAKE, tag="t", fake_args="", task_extra=""
    ).replace("fake.tag=t", f"fake.tag=orch-test-{uuid.uuid4().hex}")
    reports, _, _ = _run(tmp_path, {"optim.lr": 1e-4, "loss.weight.giou": 2.0}, text=text)
    assert [r.get(STOP_REASON) for r in reports] == [None, None, "exited_early"]
    assert "after 2 of train.epochs = 3 epochs" in reports[2][STOP_DETAIL]


def test_metrics_from_stdout_lines(tmp_path):
    pattern = r"Epoch (?P<epoch>\d+): loss=(?P<loss>\S+) map=(?P<map>\S+)"
    extra = f"  log: {{kind: stdout_regex, pattern: '{pattern}'}}"
    text = SWEEP.format(
        python=sys.executable, fake=FAKE, tag="t", fake_args="", task_extra=extra
    ).replace(
        '{val/map: "test_coco_eval_bbox[0]", val/map_50: "test_coco_eval_bbox[1]",\n'
        "             train/loss: train_loss, train/loss_giou: train_loss_giou}",
        "{val/map: map, train/loss: loss}",
    )
    text = text.replace("fake.tag=t", f"fake.tag=orch-test-{uuid.uuid4().hex}")
    lr, giou = 2.5e-4, 3.0
    reports, _, _ = _run(tmp_path, {"optim.lr": lr, "loss.weight.giou": giou}, text=text)
    assert [r["orch.epoch"] for r in reports] == [1, 2, 3]
    for e, r in enumerate(reports):
        assert r["val/map"] == pytest.approx(100 * lr * (e + 1))
        assert r["train/loss"] == pytest.approx((1.5 + 0.5 * giou) / (e + 1))


def test_tune_stopping_the_trial_stops_the_command(tmp_path):
    # Tune ends a stopped function trainable by raising SystemExit out of its report call
    calls: list[dict[str, Any]] = []

    def report(result: dict[str, Any]) -> None:
        calls.append(result)
        raise SystemExit(0)

    with pytest.raises(SystemExit):
        _run(
            tmp_path,
            {"optim.lr": 1e-4, "loss.weight.giou": 2.0},
            fake_args=', "fake.child=true"',  # with a worker of its own: the group goes
            task_extra="  stall_timeout_s: 30",
            report=report,
        )
    assert len(calls) == 1


def test_the_command_gets_the_trial_and_mlflow_environment(tmp_path):
    dump = (
        "import json, os; keys = [k for k in os.environ if k.startswith(('ORCH_', 'MLFLOW_'))]"
        " + ['MY_LR', 'PYTHONUNBUFFERED']; "
        "json.dump(dict((k, os.environ.get(k)) for k in keys), open('env.json', 'w')); "
        "open('log.txt', 'w').write(json.dumps(dict(m=1.5)) + chr(10))"
    )
    text = f"""\
name: ext
task:
  kind: command
  command: [{sys.executable}, -c, "{dump}", "{{optim.lr}}"]
  env: {{MY_LR: "lr={{optim.lr}}"}}
  metrics: {{val/m: m}}
  poll_s: 0.05
train: {{epochs: 1}}
objective: {{metric: val/m, mode: max}}
space:
  optim.lr: {{float: [1.0e-5, 1.0e-3], log: true}}
tracking: {{uri: "sqlite:////tmp/ext/mlflow.db", experiment: ext-exp}}
"""
    reports, trial_dir, _ = _run(tmp_path, {"optim.lr": 2e-4}, text=text)
    assert reports == [{"val/m": 1.5, "orch.epoch": 1, "orch.step": 1}]
    env = json.loads((trial_dir / "work" / "env.json").read_text())
    assert env["ORCH_TRIAL_ID"] == "abc_00001"
    assert env["ORCH_TRIAL_NAME"] == "trainable_abc_00001"
    assert env["ORCH_TRIAL_DIR"] == str(trial_dir)
    assert env["ORCH_WORK_DIR"] == str(trial_dir / "work")
    assert env["ORCH_SWEEP_NAME"] == "ext"
    assert json.loads(env["ORCH_PARAMS"]) == {"optim.lr": 2e-4}
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:////tmp/ext/mlflow.db"
    assert env["ORCH_MLFLOW_EXPERIMENT"] == "ext-exp"
    assert env["MY_LR"] == "lr=0.0002"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "MLFLOW_RUN_ID" not in env  # created by the driver; see docs/external-command.md


NAMED = """\
name: ext
task:
  kind: command
  command: [{python}, {fake}]
  args: {{config: cfg.yml}}
  options_flag: -u
  options:
    optimizer: {{lr: "{{optim.lr}}"}}
    epoches: "{{train.epochs}}"
    RTDETRCriterionv2.weight_dict.loss_giou: "{{loss.weight.giou}}"
    output_dir: "{{trial.work_dir}}"
    fake.epoch_s: 0.05
    fake.tag: {tag}
  metrics: {{val/map: "test_coco_eval_bbox[0]"}}
  poll_s: 0.05
loss: {{weight: {{giou: 2.0}}}}
train: {{epochs: 2}}
objective: {{metric: val/map, mode: max}}
space:
  optim.lr: {{float: [1.0e-5, 1.0e-3], log: true}}
tracking: {{enabled: false}}
"""


def test_named_arguments_and_their_overrides_reach_the_process(tmp_path):
    from orchestrator.config import load_sweep

    tag = f"orch-test-{uuid.uuid4().hex}"
    path = tmp_path / "named.yaml"
    path.write_text(NAMED.format(python=sys.executable, fake=FAKE, tag=tag))
    config = load_sweep(
        path, ["task.args.config=my.yml", "task.options.RTDETRCriterionv2.weight_dict.loss_giou=3"]
    )
    spec = TrialSpec(
        sweep=config.model_dump(by_alias=True, mode="json"),
        params={"optim.lr": 2e-4},
        data_root="/nowhere",
    )
    reports: list[dict[str, Any]] = []
    trial_dir = tmp_path / "trial"
    run_command_trial(
        spec, reports.append, trial_id="a_1", trial_name="t_a_1", trial_dir=str(trial_dir)
    )
    argv = json.loads((trial_dir / "command.json").read_text())["argv"]
    work = trial_dir / "work"
    assert argv[2:] == [
        "--config",
        "my.yml",
        "-u",
        "optimizer.lr=0.0002",
        "epoches=2",
        "RTDETRCriterionv2.weight_dict.loss_giou=3",
        f"output_dir={work}",
        "fake.epoch_s=0.05",
        f"fake.tag={tag}",
    ]
    # the script read them back
    cfg = next(
        json.loads(line[5:])
        for line in (trial_dir / "output.log").read_text().splitlines()
        if line.startswith("cfg: ")
    )
    assert cfg["config"] == "my.yml" and cfg["optimizer"]["lr"] == 2e-4
    assert [r["val/map"] for r in reports] == pytest.approx([100 * 2e-4, 200 * 2e-4])

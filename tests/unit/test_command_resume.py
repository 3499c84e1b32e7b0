"""A restarted ``command`` trial continues its script from the script's own checkpoint:
``{trial.resume_from}`` names it (and is empty, its flag left out, on a first attempt), the
work dir is kept, the log's earlier epochs are not reported again and the epochs go on
from the last one reported (#14)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.loader import validate_source
from orchestrator.config.yaml_source import parse_yaml
from orchestrator.reserved import EPOCH, RESTORED_FROM_EPOCH
from orchestrator.tasks.command.record import named_arguments
from orchestrator.training.command_trial import STATE_FILE, run_command_trial
from orchestrator.training.spec import TrialSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")

#: a training script that checkpoints every epoch into --ckpt (before logging the epoch, as
#: RT-DETR does) and continues after the checkpoint given with --resume
RESUMABLE = """\
import argparse, json, os, time
p = argparse.ArgumentParser()
p.add_argument("--out"); p.add_argument("--ckpt"); p.add_argument("--epochs", type=int)
p.add_argument("--epoch-s", type=float, default=0.05); p.add_argument("--resume")
a = p.parse_args()
start = json.load(open(a.resume))["epoch"] if a.resume else 0
with open(os.path.join(a.out, "attempts.txt"), "a") as f:
    f.write(json.dumps({"resume": a.resume, "start": start}) + "\\n")
for e in range(start, a.epochs):
    time.sleep(a.epoch_s)
    with open(os.path.join(a.ckpt, f"epoch_{e + 1}.json"), "w") as f:
        json.dump({"epoch": e + 1}, f)
    with open(os.path.join(a.out, "log.txt"), "a") as f:
        f.write(json.dumps({"epoch": e, "loss": 1.0 / (e + 1)}) + "\\n")
"""

SWEEP = """\
name: resumable
task:
  kind: command
  command: [{python}, {script}]
  args: {{out: "{{trial.work_dir}}", ckpt: "{{trial.checkpoint_dir}}", epochs: "{{train.epochs}}",
          epoch-s: {epoch_s}, resume: {resume}}}
  metrics: {{train/loss: loss}}
  poll_s: 0.05
  grace_s: 2
{extra}
train: {{epochs: 4}}
objective: {{metric: train/loss, mode: min}}
"""


def sweep_text(script: Path, *, epoch_s: float = 0.05, resume: str = '"{trial.resume_from}"',
               extra: str = "") -> str:  # fmt: skip
    """The sweep file of a trial of :data:`RESUMABLE` (written to ``script``)."""
    script.write_text(RESUMABLE)
    return SWEEP.format(
        python=sys.executable, script=script, epoch_s=epoch_s, resume=resume, extra=extra
    )


def _run(
    tmp_path: Path, text: str, restored: dict[str, Any] | None
) -> tuple[list[tuple[dict[str, Any], dict[str, Any] | None]], Path]:
    """Run the trial in ``tmp_path/trial``; each report with the state its checkpoint has."""
    config = validate_source(parse_yaml(text, "resumable.yaml"))
    spec = TrialSpec(
        sweep=config.model_dump(by_alias=True, mode="json"), params={}, data_root="/nowhere"
    )
    reports: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    def report(metrics: dict[str, Any], folder: str | None = None) -> None:
        state = json.loads((Path(folder) / STATE_FILE).read_text()) if folder else None
        reports.append((metrics, state))

    trial_dir = tmp_path / "trial"
    run_command_trial(
        spec,
        report,
        trial_id="a_1",
        trial_name="t_a_1",
        trial_dir=str(trial_dir),
        restored=restored,
        checkpoints=True,
    )
    return reports, trial_dir


def _attempts(trial_dir: Path) -> list[dict[str, Any]]:
    lines = (trial_dir / "work" / "attempts.txt").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_first_attempt_leaves_out_the_resume_flag_and_checkpoints_every_report(tmp_path):
    reports, trial_dir = _run(tmp_path, sweep_text(tmp_path / "train.py"), None)
    assert [m[EPOCH] for m, _ in reports] == [1, 2, 3, 4]
    assert [m["train/loss"] for m, _ in reports] == [1.0, 1 / 2, 1 / 3, 1 / 4]
    # every report hands Tune the trial's state after it: epochs so far and the history
    assert [s["epoch"] if s else None for _, s in reports] == [1, 2, 3, 4]
    assert [r[EPOCH] for r in reports[-1][1]["history"]] == [1, 2, 3, 4]
    assert not any(RESTORED_FROM_EPOCH in m for m, _ in reports)
    # -r/--resume with an empty value is left out: the script saw no --resume at all
    assert _attempts(trial_dir) == [{"resume": None, "start": 0}]
    argv = json.loads((trial_dir / "command.json").read_text())["argv"]
    assert "--resume" not in argv and "" not in argv
    assert sorted(p.name for p in (trial_dir / "checkpoints").iterdir()) == [
        f"epoch_{e}.json" for e in (1, 2, 3, 4)
    ]


def test_a_restart_resumes_the_script_from_its_newest_checkpoint(tmp_path):
    text = sweep_text(tmp_path / "train.py")
    first, trial_dir = _run(tmp_path, text, None)
    # as if the trial process died after its 2nd report (and its checkpoint): the script had
    # logged and checkpointed 4 epochs, the newest checkpoint being epoch 2's
    for e in (3, 4):
        (trial_dir / "checkpoints" / f"epoch_{e}.json").unlink()
    log = trial_dir / "work" / "log.txt"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:2]))
    state = first[1][1]
    assert state is not None and state["epoch"] == 2

    reports, _ = _run(tmp_path, text, state)
    newest = trial_dir / "checkpoints" / "epoch_2.json"
    assert _attempts(trial_dir) == [
        {"resume": None, "start": 0},
        {"resume": str(newest), "start": 2},
    ]
    # the log's two earlier epochs are not reported again; numbering goes on after them
    assert [m[EPOCH] for m, _ in reports] == [3, 4]
    assert [m["train/loss"] for m, _ in reports] == [1 / 3, 1 / 4]
    assert [m[RESTORED_FROM_EPOCH] for m, _ in reports] == [2, 2]
    assert [s["epoch"] if s else None for _, s in reports] == [3, 4]
    assert not (trial_dir / "work.1").exists()  # the work dir the script resumes in is kept


def test_a_restart_without_a_checkpoint_of_the_script_starts_over(tmp_path):
    text = sweep_text(tmp_path / "train.py")
    first, trial_dir = _run(tmp_path, text, None)
    for path in (trial_dir / "checkpoints").iterdir():
        path.unlink()
    reports, _ = _run(tmp_path, text, first[1][1])
    assert [m[EPOCH] for m, _ in reports] == [1, 2, 3, 4]
    assert not any(RESTORED_FROM_EPOCH in m for m, _ in reports)
    # the earlier attempt's files moved aside, so none of them is read as this one's
    assert (trial_dir / "work.1" / "log.txt").is_file()
    assert _attempts(trial_dir) == [{"resume": None, "start": 0}]


def test_a_script_that_cannot_resume_starts_over(tmp_path):
    text = sweep_text(tmp_path / "train.py", resume="null")
    first, trial_dir = _run(tmp_path, text, None)
    reports, _ = _run(tmp_path, text, first[1][1])
    assert [m[EPOCH] for m, _ in reports] == [1, 2, 3, 4]
    assert (trial_dir / "checkpoints.1" / "epoch_4.json").is_file()


def test_an_option_with_an_empty_value_is_left_out_and_its_flag_without_options(tmp_path):
    extra = '  options_flag: -u\n  options: {a.resume: "{trial.resume_from}"}'
    config = validate_source(
        parse_yaml(sweep_text(tmp_path / "train.py", extra=extra), "resumable.yaml")
    )
    values = {"trial.work_dir": "/w", "trial.checkpoint_dir": "/c", "train.epochs": 4}
    first = named_arguments(config.task, {**values, "trial.resume_from": ""})
    assert first == ["--out", "/w", "--ckpt", "/c", "--epochs", "4", "--epoch-s", "0.05"]
    again = named_arguments(config.task, {**values, "trial.resume_from": "/c/e.json"})
    assert again == [*first, "--resume", "/c/e.json", "-u", "a.resume=/c/e.json"]


def test_resume_file_cannot_contain_resume_from(tmp_path):
    from orchestrator.errors import ConfigErrors

    extra = '  resume_file: "{trial.resume_from}/x"'
    with pytest.raises(ConfigErrors) as caught:
        validate_source(parse_yaml(sweep_text(tmp_path / "t.py", extra=extra), "r.yaml"))
    assert "r.yaml:" in str(caught.value) and "task.resume_file: {trial.resume_from}" in str(
        caught.value
    )

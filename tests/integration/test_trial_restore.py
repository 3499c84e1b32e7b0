"""A one-worker trial SIGKILLed mid-run continues from its last checkpoint (#14): no epoch
repeated, every epoch once in MLflow, ``orch.restored_from_epoch`` set, not falsely stopped
as diverged, and MLflow's final metrics are Tune's last result."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.cli_sweep import run_cli_sweep

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

EPOCHS = 4
KILLED_AFTER = 2
# the default divergence rules are on: a restarted trial whose history still held the dead
# attempt's later reports would be judged against them (#19)
SWEEP = f"""\
name: restore
task: {{kind: regression, num_train: 256, num_val: 32, hidden: 16}}
optim: {{name: adamw, lr: 0.01}}
batch: {{effective: 16, micro: 16}}
train: {{epochs: {EPOCHS}, grad_clip: null, checkpoint: {{every: 1, keep: 2}}}}
objective: {{metric: val/mse, mode: min}}
sweep: {{num_samples: 1, max_concurrent: 1, max_retries: 2}}
stopping: {{scheduler: {{kind: none}}}}
"""


def test_a_killed_trial_continues_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_TEST_KILL_AFTER_REPORTS", str(KILLED_AFTER))
    _, summary, client = run_cli_sweep(tmp_path, SWEEP, "restore", timeout=900)
    (row,) = summary["trials"]
    assert row["status"] == "done" and row["stop_reason"] == "", row
    assert row["epochs"] == EPOCHS

    (trial_dir,) = (Path(summary["sweep_dir"]) / "ray" / "tune").glob("trainable_*")
    reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    # the kill came after the report of epoch 2 (which carried its checkpoint): the retry
    # starts at epoch 3, so Tune saw every epoch exactly once
    assert [r["orch.epoch"] for r in reports] == list(range(1, EPOCHS + 1))
    assert [r.get("orch.restored_from_epoch") for r in reports] == [None, None, 2, 2]
    assert [r["orch.attempt"] for r in reports] == [1, 1, 2, 2]
    assert not any(r.get("orch.stop_reason") for r in reports)

    run = client.get_run(row["run_id"])
    assert run.data.tags["orch.restored_from_epoch"] == "2"
    assert run.data.tags["orch.attempt"] == "2"
    assert run.data.tags["orch.status"] == "completed"
    steps = [r["orch.step"] for r in reports]
    for key in ("train/loss", "val/mse"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == steps, key
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
            r[key] for r in reports
        ]
    assert run.data.metrics["val/mse"] == reports[-1]["val/mse"]


# an external command (#14, item 4): the unit tests' resumable script writes its own
# checkpoint per epoch into {trial.checkpoint_dir} and continues from {trial.resume_from};
# the trial process is SIGKILLed after its 2nd report (a lost node), Tune retries it
COMMAND_SWEEP_EXTRA = """\
sweep: {num_samples: 1, max_concurrent: 1, max_retries: 2}
stopping: {scheduler: {kind: none}}"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")
def test_a_killed_command_trial_resumes_its_script_and_writes_nothing_to_rays_temp(
    tmp_path, monkeypatch
):
    from tests.unit.test_command_resume import sweep_text

    ray_tmp = Path(tempfile.mkdtemp(prefix="orch-rt-", dir="/tmp"))  # short: Unix sockets
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.setenv("ORCH_TEST_KILL_AFTER_REPORTS", str(KILLED_AFTER))
    try:
        text = sweep_text(tmp_path / "train.py", epoch_s=1.0, extra=COMMAND_SWEEP_EXTRA)
        assert f"epochs: {EPOCHS}" in text
        _, summary, client = run_cli_sweep(tmp_path, text, "resumable", timeout=600)
        in_ray_tmp = [p for p in ray_tmp.rglob("*") if p.is_file()]
        staged = [p for p in in_ray_tmp if "artifacts" in p.relative_to(ray_tmp).parts]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    (row,) = summary["trials"]
    assert row["status"] == "done" and row["stop_reason"] == "", row

    (trial_dir,) = (Path(summary["sweep_dir"]) / "ray" / "tune").glob("trainable_*")
    # the script ran twice, the second time from its epoch-2 checkpoint
    lines = (trial_dir / "work" / "attempts.txt").read_text().splitlines()
    attempts = [json.loads(line) for line in lines]
    newest = trial_dir / "checkpoints" / f"epoch_{KILLED_AFTER}.json"
    assert attempts == [{"resume": None, "start": 0}, {"resume": str(newest), "start": 2}]
    reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    assert [r["orch.epoch"] for r in reports] == list(range(1, EPOCHS + 1))
    assert [r.get("orch.restored_from_epoch") for r in reports] == [None, None, 2, 2]
    assert [r["orch.attempt"] for r in reports] == [1, 1, 2, 2]

    run = client.get_run(row["run_id"])
    assert run.data.tags["orch.restored_from_epoch"] == "2"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [1 / e for e in range(1, EPOCHS + 1)]
    )
    # the script's files and the trial's own checkpoints are in the sweep folder only:
    # nothing was staged in Ray's session folder (Ray's own logs and sockets are there)
    assert staged == [], staged
    names = {"log.txt", "attempts.txt", "command.json", "output.log", "command-state.json"}
    assert [p for p in in_ray_tmp if p.name in names or p.name.startswith("epoch_")] == []
    assert list(trial_dir.glob("checkpoint_*/command-state.json")), "Tune kept no checkpoint"


# a 2-worker (DDP) trial, one Ray Train worker (rank 1) SIGKILLed after its 2nd report
DDP_SWEEP = (
    SWEEP.replace("name: restore", "name: ddprestore")
    .replace("micro: 16", "micro: 8")
    .replace("sweep: {", "resources: {workers: 2, cpus_per_worker: 1}\nsweep: {num_cpus: 3, ")
)


def test_a_killed_worker_of_a_two_worker_trial_continues_from_its_checkpoint(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("ORCH_TEST_KILL_AFTER_REPORTS", str(KILLED_AFTER))
    monkeypatch.setenv("ORCH_TEST_KILL_RANK", "1")
    _, summary, client = run_cli_sweep(tmp_path, DDP_SWEEP, "ddprestore", timeout=900)
    (row,) = summary["trials"]
    assert row["status"] == "done" and row["stop_reason"] == "", row

    (trial_dir,) = (Path(summary["sweep_dir"]) / "ray" / "tune").glob("trainable_*")
    reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    # every epoch reached Tune once: the retry started after the last epoch Tune had
    assert [r["orch.epoch"] for r in reports] == list(range(1, EPOCHS + 1))
    attempts = [r["orch.attempt"] for r in reports]
    assert attempts == sorted(attempts) and attempts[-1] > attempts[0], attempts
    restarted = attempts.index(attempts[-1])  # the first report of the last attempt
    # Ray Train may end the run before Tune hears the dead worker's last report; either
    # way the retry continues from the checkpoint of the last epoch Tune has, not epoch 1
    assert restarted in (KILLED_AFTER - 1, KILLED_AFTER) and restarted >= 1, attempts
    restored = [r.get("orch.restored_from_epoch") for r in reports]
    assert restored[restarted:] == [restarted] * (EPOCHS - restarted), restored
    assert restored[:restarted] == [None] * restarted, restored

    run = client.get_run(row["run_id"])
    assert run.data.tags["orch.restored_from_epoch"] == str(restarted)
    assert run.data.tags["orch.attempt"] == str(attempts[-1])
    steps = [r["orch.step"] for r in reports]
    for key in ("train/loss", "val/mse"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == steps, key

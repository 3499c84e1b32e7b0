"""A one-worker trial SIGKILLed mid-run continues from its last checkpoint (#14): no epoch
repeated, every epoch once in MLflow, ``orch.restored_from_epoch`` set, not falsely stopped
as diverged, and MLflow's final metrics are Tune's last result."""

from __future__ import annotations

import json
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

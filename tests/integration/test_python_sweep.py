"""A whole sweep (CLI, real Ray Train DDP, MLflow) of ``task.kind: python``: the user's
function runs in both workers of each trial, reports once per epoch through
``orchestrator.report``, and the trial whose loss turns NaN is stopped by the
``nonfinite`` rule on every rank at the same epoch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.integration.cli_sweep import run_cli_sweep

pytestmark = pytest.mark.integration

FAKE = Path(__file__).resolve().parents[1] / "fake_train"

SWEEP = f"""\
name: pyddp
task:
  kind: python
  entrypoint: py_train:main
  path: [{FAKE}]
  metrics: [train/loss, val/score, train/world, train/rank_sum]
loss: {{gain: 1.0, nan_at: 3}}
optim: {{lr: 1.0e-3}}
batch: {{effective: 8, micro: 1}}
train: {{epochs: 6}}
objective: {{metric: val/score, mode: max}}
space:
  loss.gain: {{choice: [2.0]}}
resources: {{workers: 2, cpus_per_worker: 1}}
sweep: {{num_samples: 1, max_concurrent: 1}}
stopping: {{scheduler: {{kind: none}}}}
"""


def test_a_two_worker_python_trial_reports_per_epoch_and_is_stopped_by_a_rule(tmp_path):
    _, summary, client = run_cli_sweep(tmp_path, SWEEP, "pyddp", timeout=600)
    (row,) = summary["trials"]
    assert (row["stop_reason"], row["epochs"]) == ("nonfinite", 3)
    run = client.get_run(row["run_id"])
    assert run.data.tags["orch.stop_reason"] == "nonfinite"
    # MLflow params read back: the function's values; not the built-in loop's backend.*
    assert run.data.params["loss.gain"] == "2.0" and run.data.params["optim.lr"] == "0.001"
    assert not [k for k in run.data.params if k.startswith("backend.")]
    assert "train/loss" in run.data.tags["orch.stop_detail"]
    # the fake's formula: train/loss = lr * 1000 / e, NaN from epoch 3; val/score = e * 2
    losses = [m.value for m in client.get_metric_history(row["run_id"], "train/loss")]
    assert losses[:2] == pytest.approx([1.0, 0.5]) and math.isnan(losses[2])
    scores = [m.value for m in client.get_metric_history(row["run_id"], "val/score")]
    assert scores == [2.0, 4.0, 6.0]
    # both workers ran the function: world size 2, ranks 0 + 1 all-reduced
    assert run.data.metrics["train/world"] == 2.0 and run.data.metrics["train/rank_sum"] == 1.0
    (trial_dir,) = Path(summary["sweep_dir"]).glob(f"ray/tune/*_{row['trial_id']}_*")
    for rank in (0, 1):
        lines = (trial_dir / f"rank{rank}.jsonl").read_text().splitlines()
        # each rank stopped after the same epoch: none went on to epoch 4
        assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2, 3]

"""Whole sweeps (CLI, real Ray, Optuna, MLflow) of the toy regression task that stop trials:
a divergence rule inside the trial, a deterministic failure (not retried) and an
infrastructure failure (retried)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli_sweep import run_cli_sweep
from tests.integration.trial_ends import (
    assert_every_trial_kept_its_end,
    assert_resume_retrains_nothing,
)

pytestmark = pytest.mark.integration

BASE = """\
name: {name}
task: {{kind: regression, num_train: 64, num_val: 16{task_extra}}}
optim: {{name: sgd, lr: 0.01}}
batch: {{effective: 16, micro: 8}}
train: {{epochs: 4, grad_clip: null}}
objective: {{metric: val/mse, mode: min}}
space:
  optim.lr: {{float: [0.001, 0.01], log: true}}
sweep: {{num_samples: 2, max_concurrent: 2, max_retries: 2, sampler: {{kind: random, seed: 0}}}}
stopping:
  scheduler: {{kind: none}}
{stopping_extra}
"""


def _sweep(
    tmp_path: Path, name: str, task_extra: str = "", stopping_extra: str = "", rc: int = 0
) -> Any:
    text = BASE.format(name=name, task_extra=task_extra, stopping_extra=stopping_extra)
    return run_cli_sweep(tmp_path, text, name, rc=rc)


def test_rule_fires_inside_the_trial_and_lands_in_mlflow_and_summary(tmp_path):
    # a plateau rule no run can pass (90% better over 2 reports) fires at the 3rd report
    rule = (
        "  divergence:\n"
        "    plateau: {metric: val/mse, window: 2, warmup: 2, min_improvement: 0.9,"
        " min_progress: null}\n"
    )
    proc, summary, client = _sweep(tmp_path, "plateau", stopping_extra=rule)
    rows = summary["trials"]
    assert len(rows) == 2
    for row in rows:
        assert row["stop_reason"] == "plateau" and row["epochs"] == 3
        assert row["stop_step"] == 12  # 64 samples / effective 16 = 4 steps per epoch
        tags = client.get_run(row["run_id"]).data.tags
        assert tags["orch.stop_reason"] == "plateau"
        assert tags["orch.stop_step"] == "12"
        assert "best val/mse improved" in tags["orch.stop_detail"]
        assert len(client.get_metric_history(row["run_id"], "val/mse")) == 3
    assert "Stopped early:" in proc.stdout and "plateau at step 12 (epoch 3)" in proc.stdout
    # a divergence stop keeps the weights of the report that stopped it (#12)
    assert_every_trial_kept_its_end(summary, client, "plateau")
    assert_resume_retrains_nothing(tmp_path, summary)


def test_deterministic_failure_is_not_retried(tmp_path):
    log = tmp_path / "faults.log"
    fault = f", fault: {{kind: deterministic, log: '{log}'}}"
    # exit code 1: the sweep ran, but no trial produced an objective
    proc, summary, client = _sweep(tmp_path, "broken", task_extra=fault, rc=1)
    assert log.read_text().splitlines() == ["deterministic"] * 2  # once per trial, no retry
    for row in summary["trials"]:
        assert row["status"] == "error" and row["stop_reason"] == "error"
        assert row["stop_detail"].startswith("ValueError: injected fault")
        tags = client.get_run(row["run_id"]).data.tags
        assert tags["orch.stop_reason"] == "error"
        assert tags["orch.error_type"] == "ValueError"
        assert "Traceback" in tags["orch.stop_traceback"]
        assert "_inject_fault" in tags["orch.stop_traceback"]
        assert client.get_run(row["run_id"]).info.status == "FAILED"
        # a FAILED run offers no model
        assert client.get_run(row["run_id"]).outputs.model_outputs == []
    assert summary["best"] == []
    assert "Traceback" not in proc.stdout


def test_infrastructure_failure_is_retried(tmp_path):
    log = tmp_path / "faults.log"
    # the first two attempts (of either trial) hit a "node out of memory"; retries succeed
    fault = f", fault: {{kind: infrastructure, log: '{log}', times: 2}}"
    _, summary, _ = _sweep(tmp_path, "flaky", task_extra=fault)
    assert log.read_text().splitlines() == ["infrastructure"] * 2
    for row in summary["trials"]:
        assert row["status"] == "done" and row["stop_reason"] == "" and row["epochs"] == 4
    assert summary["best"]


@pytest.mark.timeout(600)
def test_nan_on_one_ddp_rank_stops_every_rank_without_a_hang(tmp_path):
    log = tmp_path / "faults.log"
    # rank 1 alone sees a NaN loss at its 3rd micro-batch (optimizer step 2: micro 4 x
    # 2 workers x accumulation 2 = 16); rank 0's loss stays finite. If the ranks did not
    # agree, rank 0 would wait in the next all-reduce forever.
    fault = f", fault: {{kind: nan, log: '{log}', rank: 1, at_step: 3}}"
    text = BASE.format(name="ddpnan", task_extra=fault, stopping_extra="")
    text = text.replace("batch: {effective: 16, micro: 8}", "batch: {effective: 16, micro: 4}")
    text = text.replace("num_samples: 2, max_concurrent: 2", "num_samples: 1, max_concurrent: 1")
    text += "resources: {workers: 2, cpus_per_worker: 1}\n"
    # exit code 1: the only trial produced no objective
    _, summary, _ = run_cli_sweep(tmp_path, text, "ddpnan", rc=1, timeout=540)
    assert log.read_text().splitlines() == ["nan rank 1 micro-batch 3"]
    (row,) = summary["trials"]
    assert row["stop_reason"] == "nonfinite" and row["status"] == "done"
    assert row["epochs"] == 1 and row["stop_step"] == 2
    assert "training loss became NaN/Inf at optimizer step 2" in row["stop_detail"]

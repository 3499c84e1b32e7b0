"""A trial whose loss turns NaN/Inf is stopped at once with its reason; the sweep goes on."""

from __future__ import annotations

import pytest

from tests.integration.cli_sweep import run_cli_sweep

pytestmark = pytest.mark.integration

SWEEP = """\
name: nan-test
task: {kind: regression, num_train: 64, num_val: 16}
optim: {name: sgd, lr: 0.01}
batch: {effective: 16, micro: 8}
train: {epochs: 3, grad_clip: null}
objective: {metric: val/mse, mode: min}
space:
  # 1e39 overflows float32: the weighted loss is inf on the first micro-batch
  loss.weight.mse: {choice: [1.0, 1.0e+39]}
sweep: {num_samples: 4, max_concurrent: 2, sampler: {kind: random, seed: 0}}
stopping: {scheduler: {kind: none}}
"""


def test_nonfinite_trial_stopped_with_reason_and_sweep_continues(tmp_path):
    proc, summary, client = run_cli_sweep(tmp_path, SWEEP, "nan-test")
    rows = summary["trials"]
    assert len(rows) == 4
    huge = [r for r in rows if r["params"]["loss.weight.mse"] > 1]
    sane = [r for r in rows if r["params"]["loss.weight.mse"] == 1]
    assert huge and sane, "seed 0 samples both weights"

    for row in huge:
        assert row["stop_reason"] == "nonfinite"
        assert row["epochs"] == 1  # stopped inside the first epoch, not after the last
        tags = client.get_run(row["run_id"]).data.tags
        assert tags["orch.stop_reason"] == "nonfinite"
        assert (
            tags["orch.stop_detail"]
            == "training loss became NaN/Inf at optimizer step 1 (epoch 1)"
        )
    for row in sane:
        assert row["stop_reason"] == "" and row["epochs"] == 3
        assert len(client.get_metric_history(row["run_id"], "val/mse")) == 3
    assert summary["best"][0]["params"]["loss.weight.mse"] == 1.0
    assert "NONFINITE" in proc.stdout

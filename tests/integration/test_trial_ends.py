"""Real sweeps whose trials end the ways the shipped policies end them (ASHA at a rung and
at ``max_t``, the median rule, no scheduler; a divergence rule is in test_sweep_stopping):
whatever ended a trial, its weights, finished mark and the registry are there (#12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.cli_sweep import run_cli_sweep
from tests.integration.trial_ends import (
    assert_every_trial_kept_its_end,
    assert_resume_retrains_nothing,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_asha_as_shipped_keeps_weights_of_finished_and_cut_trials(tmp_path):
    # search_spaces/smoke.yaml (the tiny RT-DETR) under rtdetr.yaml's rules and the ASHA it
    # shipped before the forecast scheduler, scaled to 2 epochs: rungs at epochs 1 and 2
    # (= max_t, where ASHA stops every trial in its report)
    sweep = yaml.safe_load((ROOT / "search_spaces/smoke.yaml").read_text())
    shipped = yaml.safe_load((ROOT / "search_spaces/rtdetr.yaml").read_text())
    sweep["stopping"] = shipped["stopping"]
    sweep["stopping"]["scheduler"] = {"kind": "asha", "grace_period": 1, "reduction_factor": 2}
    sweep["name"] = "ashaends"
    sweep["tracking"] = {"experiment": "ashaends"}
    # one worker and one trial at a time: ASHA sees the trials in a fixed order, and the
    # L1 box loss (which differs between trials from the first epoch; val/map of a tiny
    # model ties at 0) makes some of them fall below a rung's cutoff
    sweep["resources"] = {"workers": 1, "cpus_per_worker": 1}
    sweep["sweep"].update(num_samples=4, max_concurrent=1)
    sweep["objective"] = {"metric": "train/raw_bbox", "mode": "min"}
    proc, summary, client = run_cli_sweep(tmp_path, yaml.safe_dump(sweep), "ashaends")

    rows = summary["trials"]
    cut = [r for r in rows if r["stop_reason"] == "scheduler"]
    full = [r for r in rows if not r["stop_reason"]]
    assert cut and full, rows
    for row in cut:
        assert row["stopped_by"] == "asha" and row["epochs"] == 1
        assert row["stop_detail"].startswith("ASHA rung at epoch 1: train/raw_bbox ")
        assert "above the rung's cutoff" in row["stop_detail"]
        tags = client.get_run(row["run_id"]).data.tags
        assert tags["orch.stopped_by"] == "asha"
        assert tags["orch.stop_detail"] == row["stop_detail"]
        assert f"{row['trial']}: scheduler (asha) (epoch 1) - ASHA rung" in proc.stdout
    for row in full:
        assert row["epochs"] == 2
    assert_every_trial_kept_its_end(summary, client, "ashaends", epochs=2)
    assert_resume_retrains_nothing(tmp_path, summary)


REGRESSION = """\
name: {name}
task: {{kind: regression, num_train: 64, num_val: 16}}
optim: {{name: sgd, lr: 0.01}}
batch: {{effective: 16, micro: 8}}
train: {{epochs: 4, grad_clip: null}}
objective: {{metric: val/mse, mode: min}}
space:
  optim.lr: {{float: [0.0001, 0.05], log: true}}
sweep: {{num_samples: 4, max_concurrent: 1, sampler: {{kind: random, seed: 3}}}}
stopping:
  scheduler: {scheduler}
"""


@pytest.mark.parametrize(
    ("kind", "scheduler"),
    [
        ("median", "{kind: median, grace_period: 1, min_samples_required: 1}"),
        ("none", "{kind: none}"),
    ],
)
def test_median_and_no_scheduler_keep_every_trials_weights(tmp_path, kind, scheduler):
    name = f"{kind}ends"
    text = REGRESSION.format(name=name, scheduler=scheduler)
    proc, summary, client = run_cli_sweep(tmp_path, text, name)
    rows = summary["trials"]
    assert len(rows) == 4
    if kind == "median":
        cut = [r for r in rows if r["stop_reason"] == "scheduler"]
        assert cut, rows
        for row in cut:
            assert row["stopped_by"] == "median"
            assert row["stop_detail"].startswith("median stopping at epoch ")
            assert f"{row['trial']}: scheduler (median)" in proc.stdout
    else:
        assert all(not r["stop_reason"] and r["epochs"] == 4 for r in rows), rows
    assert_every_trial_kept_its_end(summary, client, name, epochs=4)
    assert_resume_retrains_nothing(tmp_path, summary)


def test_forecast_scheduler_cuts_like_asha_and_keeps_weights(tmp_path):
    # four learning rates, one trial at a time: the smallest ones barely move val/mse,
    # and the forecast of their curve at the next rung cannot reach the cutoff
    name = "forecastends"
    text = (
        REGRESSION.format(
            name=name, scheduler="{kind: forecast, grace_period: 2, reduction_factor: 2}"
        )
        .replace(
            "optim.lr: {float: [0.0001, 0.05], log: true}",
            "optim.lr: {choice: [0.05, 0.00002, 0.02, 0.00001]}",
        )
        .replace("epochs: 4", "epochs: 6")
    )
    proc, summary, client = run_cli_sweep(tmp_path, text, name)
    rows = summary["trials"]
    assert len(rows) == 4
    cut = [r for r in rows if r["stop_reason"] == "scheduler"]
    assert cut, rows
    for row in cut:
        assert row["stopped_by"] == "forecast" and row["epochs"] < 6
        assert row["stop_detail"].startswith("forecast rung at epoch ")
        assert "against the rung's cutoff" in row["stop_detail"]
        tags = client.get_run(row["run_id"]).data.tags
        assert tags["orch.stopped_by"] == "forecast"
        assert tags["orch.stop_detail"] == row["stop_detail"]
        assert f"{row['trial']}: scheduler (forecast)" in proc.stdout
        assert float(row["params"]["optim.lr"]) < 1e-4
    assert_every_trial_kept_its_end(summary, client, name, epochs=6)
    assert_resume_retrains_nothing(tmp_path, summary)

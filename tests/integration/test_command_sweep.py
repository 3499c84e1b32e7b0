"""A whole sweep (CLI, real Ray, Optuna, MLflow) of the ``command`` task: the fake RT-DETR
script runs once per trial; its epochs land in MLflow, the trial whose loss turns NaN is
stopped by the ``nonfinite`` rule, the one ASHA cuts is stopped by Tune, each with its
reason on record, and no process of any of them is left."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.cli_sweep import run_cli_sweep
from tests.unit.test_command_runner import FAKE, _leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals"),
]

SWEEP = """\
name: {name}
task:
  kind: command
  command: [{python}, {fake}, -c, configs/rtdetrv2/fake.yml, -u, "optimizer.lr={{optim.lr}}",
            "epoches={{train.epochs}}",
            "RTDETRCriterionv2.weight_dict.loss_giou={{loss.weight.giou}}",
            "output_dir={{trial.work_dir}}", "fake.epoch_s=0.3", "fake.nan_giou_above=5",
            "fake.slow_below_lr=5.0e-4", "fake.tag={tag}"]
  metrics: {{val/map: "test_coco_eval_bbox[0]", val/map_50: "test_coco_eval_bbox[1]",
             train/loss: train_loss, train/loss_giou: train_loss_giou}}
  poll_s: 0.1
  grace_s: 2
  stall_timeout_s: 120
loss: {{weight: {{giou: 2.0}}}}
train: {{epochs: 4}}
objective: {{metric: val/map, mode: max}}
space:
  optim.lr: {{choice: [1.0e-3, 1.0e-4]}}
  # the fake script's loss is NaN from its 2nd epoch when this weight is above 5
  loss.weight.giou: {{choice: [1.0, 8.0]}}
resources: {{workers: 1, cpus_per_worker: 1}}
# one trial at a time, so ASHA's rung is decided by the trials before; seed 59 samples
# (lr, giou) = (1e-3, 1), (1e-3, 8), (1e-4, 1)
sweep: {{num_samples: 3, max_concurrent: 1, sampler: {{kind: random, seed: 59}}}}
stopping:
  scheduler: {{kind: asha, grace_period: 1, reduction_factor: 2}}
"""


def test_command_sweep_reports_epochs_stops_trials_and_leaves_no_process(tmp_path):
    tag = f"orch-test-{uuid.uuid4().hex}"
    text = SWEEP.format(name="ext", python=sys.executable, fake=FAKE, tag=tag)
    started = time.monotonic()
    proc, summary, client = run_cli_sweep(tmp_path, text, "ext", timeout=300)
    wall = time.monotonic() - started
    assert _leftovers(tag) == [], "a training process outlived its trial"
    rows = summary["trials"]
    sampled = [(r["params"]["optim.lr"], r["params"]["loss.weight.giou"]) for r in rows]
    # another Optuna RNG could need another seed to reach every case below
    assert sampled == [(1e-3, 1.0), (1e-3, 8.0), (1e-4, 1.0)], sampled
    for row in rows:
        run = client.get_run(row["run_id"])
        lr, giou = row["params"]["optim.lr"], row["params"]["loss.weight.giou"]
        assert float(run.data.params["optim.lr"]) == pytest.approx(lr)
        # only what the command line uses: not optim.name, backend.* or batch.*
        assert set(run.data.params) == {"optim.lr", "train.epochs", "loss.weight.giou"}
        # the rendered command line, failed and stopped trials included
        (artifact,) = client.list_artifacts(row["run_id"], "command")
        assert artifact.path == "command/command.json"
        local = client.download_artifacts(row["run_id"], "command/command.json", str(tmp_path))
        argv = json.loads(Path(local).read_text())["argv"]
        assert f"optimizer.lr={lr!r}" in argv and f"fake.tag={tag}" in argv
        if giou > 5:  # NaN at its 2nd epoch; its 1st equalled the best, so ASHA kept it
            assert (row["stop_reason"], row["epochs"]) == ("nonfinite", 2)
            assert run.data.tags["orch.stop_reason"] == "nonfinite"
            assert "train/loss" in run.data.tags["orch.stop_detail"]
        elif lr < 5e-4:  # its mAP is 10x below the others' at the first rung: ASHA cuts it
            assert (row["stop_reason"], row["epochs"]) == ("scheduler", 1)
            assert run.data.tags["orch.stop_reason"] == "scheduler"
        else:
            assert (row["stop_reason"], row["status"], row["epochs"]) == ("", "done", 4)
            losses = client.get_metric_history(row["run_id"], "train/loss")
            assert [m.value for m in losses] == pytest.approx(
                [(1.5 + 0.5 * giou) / (e + 1) for e in range(4)]
            )
        maps = [m.value for m in client.get_metric_history(row["run_id"], "val/map")]
        assert maps == pytest.approx([100 * lr * (e + 1) for e in range(row["epochs"])])
        # the trial's own folder: the script's log in its work dir, its output beside it
        (trial_dir,) = Path(summary["sweep_dir"]).glob(f"ray/tune/*_{row['trial_id']}_*")
        assert "Epoch 0:" in (trial_dir / "output.log").read_text()
        logged = (trial_dir / "work" / "log.txt").read_text().splitlines()
        # the cut trial's script would log epoch 2 only after 30 s: it was stopped first
        assert len(logged) == row["epochs"]
    assert "nonfinite" in proc.stdout
    print(f"command sweep: 3 trials in {wall:.1f} s")  # shown with -s

"""A real sweep of the ``detector`` task (Faster R-CNN): both box-head losses run through
Ray, Optuna and MLflow, every loss term is reported, and the detector learns."""

from __future__ import annotations

import pytest

from tests.integration.cli_sweep import run_cli_sweep

pytestmark = pytest.mark.integration

# 48 images of 64 px, 12 optimizer steps per epoch, 4 epochs: ~70 s on 2 busy CPU cores
SWEEP = """\
name: det-smoke
task:
  kind: detector
  model: {channels: 32, head_dim: 128}
  data: {kind: synthetic, num_train: 48, num_val: 16, image_size: 64, num_classes: 2,
         max_objects: 2, seed: 0}
loss: {cls: ce, weight: {bbox: 2.0}}
optim: {lr: 2.0e-3}
batch: {effective: 4, micro: 4}
train: {epochs: 4, grad_clip: 10.0}
objective: {metric: val/map_50, mode: max}
space:
  loss.cls: {choice: [ce, focal]}
  loss.rcnn.sampler.num: {choice: [64, 128]}
sweep: {num_samples: 2, max_concurrent: 2, sampler: {kind: random, seed: 1}}
stopping: {scheduler: {kind: none}}
"""
COMPONENTS = ("cls", "bbox", "rpn_cls", "rpn_bbox")


def test_detector_sweep_reports_every_term_and_learns(tmp_path):
    proc, summary, client = run_cli_sweep(tmp_path, SWEEP, "det-smoke")
    assert "Traceback" not in proc.stdout + proc.stderr
    rows = summary["trials"]
    assert len(rows) == 2
    assert {r["params"]["loss.cls"] for r in rows} == {"ce", "focal"}, "seed 1 samples both"
    finals = {}
    for row in rows:
        assert row["stop_reason"] == "" and row["epochs"] == 4
        run = row["run_id"]
        params = client.get_run(run).data.params
        assert params["loss.rcnn.sampler.num"] in ("64", "128")
        assert params["loss.rpn.sampler.num"] == "256"  # unsearched: the file's default
        for name in COMPONENTS:
            raw = client.get_metric_history(run, f"train/raw_{name}")
            weighted = client.get_metric_history(run, f"train/loss_{name}")
            assert len(raw) == len(weighted) == 4, name
            weight = 2.0 if name == "bbox" else 1.0
            assert weighted[-1].value == pytest.approx(weight * raw[-1].value, rel=1e-5)
        # the RPN learns to tell objects from background
        objectness = [m.value for m in client.get_metric_history(run, "train/raw_rpn_cls")]
        assert objectness[-1] < 0.5 * objectness[0]
        maps = client.get_metric_history(run, "val/map")
        maps_50 = client.get_metric_history(run, "val/map_50")
        assert len(maps) == len(maps_50) == 4
        assert 0.0 <= maps[-1].value <= maps_50[-1].value <= 1.0
        finals[row["params"]["loss.cls"]] = maps_50[-1].value
    # 48 steps are enough for the ce head to find the shapes (0.25 mAP@.5 when measured)
    assert finals["ce"] > 0.05
    assert summary["best"][0]["params"]["loss.cls"] == max(finals, key=finals.__getitem__)

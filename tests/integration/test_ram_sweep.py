"""A real 2-trial sweep of the ram task with target_share weighting: real Ray, Optuna and
MLflow; the calibrated weights are read back from MLflow and checked against the shares."""

from __future__ import annotations

import pytest

from tests.integration.cli_sweep import run_cli_sweep

pytestmark = pytest.mark.integration

SWEEP = """\
name: ramsmoke
task:
  kind: ram
  model: {width: 8, embed_dim: 32}
  teacher: {width: 8, dim: 16}
  data: {num_train: 48, num_val: 16, image_size: 16, num_tags: 12, max_objects: 3}
loss:
  weighting: target_share
  weight: {tag: 1.0, distill: 1.0, coarse: 1.0}
  share: {tag: 0.5, distill: 0.3, coarse: 0.2}
optim: {lr: 3.0e-3}
batch: {effective: 16, micro: 8}
train: {epochs: 2, grad_clip: 5.0}
objective: {metric: val/map, mode: max}
space:
  loss.share.distill: {float: [0.05, 0.9]}
  optim.lr: {float: [1.0e-3, 1.0e-2], log: true}
resources: {workers: 1, cpus_per_worker: 1}
sweep: {num_samples: 2, max_concurrent: 2, sampler: {kind: random, seed: 0}}
stopping: {scheduler: {kind: none}}
tracking: {experiment: ramsmoke}
"""

COMPONENTS = ("tag", "distill", "coarse")


def test_ram_sweep_calibrates_target_share_weights_and_logs_them(tmp_path):
    proc, summary, client = run_cli_sweep(tmp_path, SWEEP, "ramsmoke", timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(summary["trials"]) == 2
    normalised = []
    for row in summary["trials"]:
        run = client.get_run(row["run_id"])
        assert run.info.status == "FINISHED" and row["epochs"] == 2
        for name in ("val/map", "val/f1", "train/raw_tag", "train/raw_distill"):
            assert len(client.get_metric_history(row["run_id"], name)) == 2, name
        weights = {}
        for c in COMPONENTS:
            history = client.get_metric_history(row["run_id"], f"train/weight_{c}")
            # calibrated once at the start: the same weight at both epochs
            assert len(history) == 2 and history[0].value == history[1].value, c
            weights[c] = history[0].value
            weighted = client.get_metric_history(row["run_id"], f"train/loss_{c}")[-1].value
            raw = client.get_metric_history(row["run_id"], f"train/raw_{c}")[-1].value
            assert weighted == pytest.approx(weights[c] * raw, rel=1e-5)
        params = run.data.params
        shares = {c: float(params[f"loss.share.{c}"]) for c in COMPONENTS}
        assert shares["tag"] == 0.5 and shares["coarse"] == 0.2
        # w_c = s_c * S / m_c, so w_c / s_c x s_tag / w_tag = m_tag / m_c: the measured
        # magnitudes, identical in both trials (same seed, model init and calibration
        # batches; the learning rate acts only after calibration) whatever share was drawn
        normalised.append(
            {
                c: (weights[c] / shares[c]) * (shares["tag"] / weights["tag"])
                for c in ("distill", "coarse")
            }
        )
    first, second = (float(row["params"]["loss.share.distill"]) for row in summary["trials"])
    assert first != pytest.approx(second)  # the two trials drew different shares
    assert normalised[0] == pytest.approx(normalised[1], rel=1e-4)

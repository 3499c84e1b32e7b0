"""The trial loop in one process (no Ray): reports, steps, weighting, NaN stop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from orchestrator.config import load_sweep
from orchestrator.config.metrics import train_metrics
from orchestrator.search_space import SearchSpace
from orchestrator.training.loop import run_trial
from orchestrator.training.spec import TrialSpec

REGRESSION = """\
name: loop
task: {kind: regression, num_train: 64, num_val: 32}
loss: {weight: {mse: 1.0, l1: 0.5}}
optim: {name: adamw, lr: 0.02}
batch: {effective: 16, micro: 8}
train: {epochs: 3, grad_clip: 1.0}
objective: {metric: val/mse, mode: min}
"""


def run(tmp_path: Path, text: str, params: dict | None = None) -> list[dict]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    config = load_sweep(path)
    params = dict(params or {})
    params.update(SearchSpace(config).derived(params))
    reports: list[dict] = []
    spec = TrialSpec(config.model_dump(by_alias=True, mode="json"), params, str(tmp_path))
    run_trial(spec, reports.append)
    return reports


def test_one_report_per_epoch_with_steps_weights_and_learning(tmp_path):
    reports = run(tmp_path, REGRESSION)
    assert [r["orch.epoch"] for r in reports] == [1, 2, 3]
    # 64 samples / effective 16 = 4 optimizer steps per epoch (2 micro-batches each)
    assert [r["orch.step"] for r in reports] == [4, 8, 12]
    assert [r["orch.samples_seen"] for r in reports] == [64, 128, 192]
    for r in reports:
        assert r["train/loss_l1"] == pytest.approx(0.5 * r["train/raw_l1"])
        assert r["train/loss"] == pytest.approx(r["train/loss_mse"] + r["train/loss_l1"])
        assert r["train/lr"] == pytest.approx(0.02)
        assert r["train/grad_norm"] > 0 and r["train/samples_per_s"] > 0
    assert reports[-1]["val/mse"] < reports[0]["val/mse"]


def test_every_metric_a_trial_reports_is_an_objective_the_checks_accept(tmp_path):
    # the objective check's list and the loop's report must not drift apart again
    # (train/peak_mem_mb was reported but rejected as an objective)
    reports = run(tmp_path, REGRESSION)
    reported = {k for k in reports[0] if k.startswith(("train/", "val/"))}
    assert reported == {"val/mse", *train_metrics(["mse", "l1"])}
    for metric in sorted(reported):
        load_sweep(write(tmp_path, REGRESSION.replace("val/mse, mode", f"{metric}, mode")))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "objective.yaml"
    path.write_text(text)
    return path


def test_sampled_params_override_the_file(tmp_path):
    reports = run(tmp_path, REGRESSION, {"loss.weight.l1": 0.0, "batch.effective": 32})
    assert reports[0]["train/loss_l1"] == 0.0
    assert [r["orch.step"] for r in reports] == [2, 4, 6]  # 64 / 32


def test_nonfinite_loss_stops_at_first_optimizer_step(tmp_path):
    reports = run(tmp_path, REGRESSION, {"loss.weight.mse": 1e39})
    (only,) = reports
    assert only["orch.stop_reason"] == "nonfinite"
    assert only["orch.step"] == 1
    assert math.isnan(only["train/loss"])
    assert "val/mse" not in only


def test_rtdetr_trial_runs_an_epoch(tmp_path):
    text = """\
name: rt
task:
  kind: rtdetr
  model: {preset: tiny, num_queries: 10}
  data: {kind: synthetic, num_train: 8, num_val: 4, image_size: 64, num_classes: 2,
         max_objects: 2}
loss: {cls: ce, ce: {bg_weight: 0.1}}
batch: {effective: 4, micro: 2}
train: {epochs: 1}
objective: {metric: val/map, mode: max}
"""
    (report,) = run(tmp_path, text)
    assert report["orch.step"] == 2
    for key in ("train/loss", "train/raw_cls", "train/raw_bbox", "train/raw_giou", "val/loss_raw"):
        assert math.isfinite(report[key]), key
    assert 0.0 <= report["val/map"] <= 1.0 and 0.0 <= report["val/map_50"] <= 1.0


def test_divergence_rule_stops_inside_the_trial_with_reason_and_step(tmp_path):
    # val/mse must halve every 2 reports: no run does, so plateau fires at the 3rd report
    text = REGRESSION.replace("train: {epochs: 3", "train: {epochs: 6") + (
        "stopping:\n  divergence:\n    plateau: {metric: val/mse, window: 2, warmup: 2,"
        " min_improvement: 0.5, min_progress: null}\n"
    )
    reports = run(tmp_path, text)
    assert len(reports) == 3
    last = reports[-1]
    assert last["orch.stop_reason"] == "plateau"
    assert last["orch.stop_step"] == 12  # 64 samples / 16 per step x 3 epochs
    assert "best val/mse improved" in last["orch.stop_detail"]
    assert all(r["train/skipped_frac"] == 0.0 for r in reports)  # fp32: no scaler
    assert all("orch.stop_reason" not in r for r in reports[:-1])


@pytest.mark.parametrize("kind", ["regression", "rtdetr", "detector"])
def test_final_weights_are_an_mlflow_pytorch_model_with_a_signature(tmp_path, kind):
    import mlflow.pytorch
    import torch
    from mlflow.models import Model

    text = REGRESSION
    if kind != "regression":
        text = """\
name: rt
task:
  kind: rtdetr
  model: {preset: tiny, num_queries: 10}
  data: {kind: synthetic, num_train: 4, num_val: 2, image_size: 64, num_classes: 2,
         max_objects: 2}
batch: {effective: 4, micro: 4}
train: {epochs: 1}
objective: {metric: val/map, mode: max}
"""
    if kind == "detector":  # NMS loops over data: torch.export fails, pickle is the fallback
        text = text.replace("kind: rtdetr", "kind: detector").replace(
            "model: {preset: tiny, num_queries: 10}", "model: {channels: 16, head_dim: 32}"
        )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    config = load_sweep(path)
    params = SearchSpace(config).derived({})
    out = tmp_path / "model"
    spec = TrialSpec(
        config.model_dump(by_alias=True, mode="json"), params, str(tmp_path), output_dir=str(out)
    )
    run_trial(spec, lambda r: None)
    assert (out / "model.pt").is_file() and (out / "batch_plan.json").is_file()
    meta = Model.load(str(out / "MLmodel"))
    assert "pytorch" in meta.flavors
    inputs = meta.signature.inputs.to_dict()[0]
    expected = [2, 8] if kind == "regression" else [2, 3, 64, 64]  # the first val samples
    assert list(inputs["tensor-spec"]["shape"][1:]) == expected[1:]
    module = mlflow.pytorch.load_model(str(out))
    state = torch.load(out / "model.pt")
    for name, value in module.state_dict().items():
        assert torch.equal(value, state[name]), name

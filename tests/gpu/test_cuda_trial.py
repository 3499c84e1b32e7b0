"""Trials on a CUDA device (skipped without one; see tests/conftest.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_regression_trial_trains_on_cuda(tmp_path):
    import torch

    from tests.unit.test_trial_loop import REGRESSION, run

    torch.cuda.reset_peak_memory_stats()
    reports = run(tmp_path, REGRESSION)
    assert torch.cuda.max_memory_allocated() > 0  # the model really lived on the GPU
    assert reports[-1]["val/mse"] < reports[0]["val/mse"]


def test_rtdetr_trial_on_cuda_bf16(tmp_path):
    import torch

    from tests.unit.test_trial_loop import run

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    text = """\
name: rt
task: {kind: rtdetr, model: {preset: tiny}, data: {kind: synthetic, num_train: 32, num_val: 8}}
batch: {effective: 16, micro: 8}
train: {epochs: 1}
backend: {mixed_precision: bf16}
objective: {metric: val/map, mode: max}
"""
    (report,) = run(tmp_path, text)
    assert report["orch.step"] == 2


def test_fp16_skipped_steps_are_counted_not_divergence(tmp_path):
    # weight 1e5: at the scaler's initial scale (65536) the fp16 gradients overflow, so the
    # first ~17 steps are skipped while the scale halves; 64 steps per epoch keep that
    # under amp_overflow's 50%. The trial must neither stop nor report an inf grad norm.
    from tests.unit.test_trial_loop import run

    text = """\
name: amp
task: {kind: regression, num_train: 1024, num_val: 64}
loss: {weight: {mse: 1.0e+5, l1: 0.0}}
optim: {name: adamw, lr: 1.0e-3}
batch: {effective: 16, micro: 16}
train: {epochs: 2, grad_clip: null}
backend: {mixed_precision: fp16}
objective: {metric: val/mse, mode: min}
"""
    reports = run(tmp_path, text)
    assert [r["orch.epoch"] for r in reports] == [1, 2]
    assert "orch.stop_reason" not in reports[-1]
    assert 0 < reports[0]["train/skipped_frac"] < 0.5
    assert reports[1]["train/skipped_frac"] < reports[0]["train/skipped_frac"]
    assert all(r["train/grad_norm"] < float("inf") for r in reports)


def test_real_cuda_oom_backs_off_to_a_micro_batch_that_fits(tmp_path):
    # hidden 32768 x 2^20 samples x 4 bytes = 128 GiB of activations in one pass: no GPU
    # holds it, so the trial must back off (effective batch unchanged) until a pass fits
    from tests.unit.test_trial_loop import run

    text = """\
name: oom
task: {kind: regression, num_train: 1048576, num_val: 64, features: 8, hidden: 32768}
optim: {name: sgd, lr: 1.0e-3}
batch: {effective: 1048576, micro: 1048576}
train: {epochs: 1, grad_clip: 1.0}
objective: {metric: val/mse, mode: min}
"""
    (report,) = run(tmp_path, text)
    assert report["orch.oom_backoffs"] >= 1
    assert report["orch.micro_batch"] * report["orch.accum"] == 1048576
    assert "orch.stop_reason" not in report


def test_deepspeed_zero2_trains_a_regression_trial(tmp_path, monkeypatch):
    import socket

    pytest.importorskip("deepspeed", reason="pip install -e .[deepspeed]")
    from tests.unit.test_trial_loop import run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # DeepSpeed always initialises torch.distributed, even for one process
    for k, v in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }.items():
        monkeypatch.setenv(k, v)
    text = """\
name: ds
task: {kind: regression, num_train: 256, num_val: 64}
optim: {name: adamw, lr: 1.0e-2}
batch: {effective: 32, micro: 8}
train: {epochs: 3, grad_clip: 1.0}
backend: {kind: deepspeed, zero_stage: 2, mixed_precision: bf16}
objective: {metric: val/mse, mode: min}
"""
    reports = run(tmp_path, text)
    assert [r["orch.accum"] for r in reports] == [4, 4, 4]
    assert reports[-1]["val/mse"] < reports[0]["val/mse"]

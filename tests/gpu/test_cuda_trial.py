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

"""Batch arithmetic, learning-rate scaling, OOM back-off and ``micro: auto`` (CPU, with the
injectable memory limit), and the accumulation/DDP equivalence test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orchestrator.config import load_sweep
from orchestrator.config.batch import (
    backoff_micro,
    batch_problem,
    micro_candidates,
    scaled_lr,
)
from orchestrator.errors import ConfigErrors
from orchestrator.search_space.space import SearchSpace
from orchestrator.training.loop import run_trial
from orchestrator.training.spec import TrialSpec

BASE = """\
name: b
task: {kind: regression, num_train: 64, num_val: 16, hidden: 8}
loss: {reduction: REDUCTION}
optim: {name: sgd, lr: 0.05, momentum: 0.0, weight_decay: 0.0}
batch: {effective: 16, micro: MICRO}
train: {epochs: 1, grad_clip: null, seed: 3}
objective: {metric: val/mse, mode: min}
resources: {workers: WORKERS}
"""


def sweep(
    tmp_path: Path,
    micro: int | str = 16,
    workers: int = 1,
    reduction: str = "mean",
    extra: str = "",
) -> Path:
    text = BASE.replace("MICRO", str(micro)).replace("WORKERS", str(workers))
    path = tmp_path / f"s-{micro}-{workers}-{reduction}.yaml"
    path.write_text(text.replace("REDUCTION", reduction) + extra)
    return path


def run(path: Path, out: Path | None = None, cache: Path | None = None) -> list[dict]:
    config = load_sweep(path)
    reports: list[dict] = []
    params = SearchSpace(config).derived({})
    spec = TrialSpec(
        config.model_dump(by_alias=True, mode="json"),
        params,
        str(path.parent),
        output_dir=str(out) if out else None,
        memory_cache=str(cache) if cache else None,
    )
    run_trial(spec, reports.append)
    return reports


# --- arithmetic ----------------------------------------------------------------------


def test_lr_scaling_rules() -> None:
    assert scaled_lr(0.1, 64, 16, "none") == 0.1
    assert scaled_lr(0.1, 64, 16, "linear") == pytest.approx(0.4)
    assert scaled_lr(0.1, 64, 16, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 8, 32, "linear") == pytest.approx(0.025)


def test_micro_candidates_and_backoff_ladder() -> None:
    assert micro_candidates(24, 2) == [12, 6, 4, 3, 2, 1]
    assert backoff_micro(24, 12, 2) == 6
    assert backoff_micro(24, 6, 2) == 3  # halving lands on a divisor
    assert backoff_micro(24, 4, 2) == 2
    assert backoff_micro(24, 3, 2) == 1  # 1.5 is no batch: the next valid one below
    assert backoff_micro(24, 1, 2) is None
    assert batch_problem(16, "auto", 2) is None
    assert "does not split evenly" in str(batch_problem(15, "auto", 2))


def test_lr_scaled_is_derived_per_trial(tmp_path: Path) -> None:
    path = sweep(tmp_path, micro=4, extra="space:\n  batch.effective: {choice: [16, 64]}\n")
    text = path.read_text().replace(
        "effective: 16, micro: 4}", "effective: 16, micro: 4, lr_scaling: sqrt, reference: 16}"
    )
    path.write_text(text)
    space = SearchSpace(load_sweep(path))
    assert space.derived({"batch.effective": 64})["orch.lr_scaled"] == pytest.approx(0.1)
    assert space.derived({"batch.effective": 16})["orch.lr_scaled"] == pytest.approx(0.05)


def test_offload_without_deepspeed_is_a_config_error(tmp_path: Path) -> None:
    path = sweep(tmp_path, extra="backend: {kind: ddp, offload_optimizer: cpu}\n")
    with pytest.raises(ConfigErrors, match="offload_optimizer/offload_params need kind"):
        load_sweep(path)


# --- OOM back-off and auto, on CPU through backend.simulate_oom_above -------------------


def test_oom_backoff_halves_micro_keeps_effective_and_matches_unbroken_run(tmp_path: Path) -> None:
    # a limit of 5 samples per pass: micro 16 -> 8 -> 4 (accumulation 1 -> 2 -> 4)
    limited = sweep(tmp_path, micro=16, extra="backend: {simulate_oom_above: 5}\n")
    reports = run(limited, tmp_path / "out-limited")
    last = reports[-1]
    assert last["orch.micro_batch"] == 4 and last["orch.accum"] == 4
    assert last["orch.oom_backoffs"] == 2
    assert "orch.stop_reason" not in last
    assert last["orch.step"] == 4  # 64 samples / 16 per step: no step lost or repeated
    plan = json.loads((tmp_path / "out-limited" / "batch_plan.json").read_text())
    assert plan == {"micro": 4, "accum": 4, "effective": 16, "oom_backoffs": ["16->8", "8->4"]}
    # the same samples per step, split differently: the same weights as micro 4 from the start
    run(sweep(tmp_path, micro=4), tmp_path / "out-direct")
    a = torch.load(tmp_path / "out-limited" / "model.pt")
    b = torch.load(tmp_path / "out-direct" / "model.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_oom_at_micro_one_stops_with_a_clear_reason(tmp_path: Path) -> None:
    # limit 1: 16 -> 8 -> 4 -> 2 -> 1 fits
    reports = run(sweep(tmp_path, micro=16, extra="backend: {simulate_oom_above: 1}\n"))
    assert reports[-1]["orch.micro_batch"] == 1 and reports[-1]["orch.oom_backoffs"] == 4
    # limit 0: nothing fits; after backing off to 1 the trial stops instead of looping
    (report,) = run(sweep(tmp_path, micro=16, extra="backend: {simulate_oom_above: 0}\n"))
    assert report["orch.stop_reason"] == "oom" and report["orch.oom_backoffs"] == 4
    assert report["orch.stop_detail"].startswith(
        "out of memory at micro-batch 1; the micro-batch is already 1"
    )
    assert report["orch.step"] == 0


def test_later_trials_start_where_earlier_ones_found_memory(tmp_path: Path) -> None:
    cache = tmp_path / "memory.json"
    limited = sweep(tmp_path, micro=16, extra="backend: {simulate_oom_above: 5}\n")
    first = run(limited, cache=cache)[-1]
    second = run(limited, cache=cache)[-1]
    assert (first["orch.micro_batch"], first["orch.oom_backoffs"]) == (4, 2)
    assert (second["orch.micro_batch"], second["orch.oom_backoffs"]) == (4, 0)
    assert second["train/loss"] == first["train/loss"]  # same samples per step, same result
    nothing = sweep(tmp_path, micro=8, extra="backend: {simulate_oom_above: 0}\n")
    assert run(nothing, cache=cache)[-1]["orch.stop_reason"] == "oom"
    (again,) = run(nothing, cache=cache)
    assert again["orch.stop_reason"] == "oom" and again["orch.step"] == 0
    assert "an earlier trial of this sweep found" in again["orch.stop_detail"]


def test_micro_auto_picks_the_largest_that_fits(tmp_path: Path) -> None:
    reports = run(sweep(tmp_path, micro="auto", extra="backend: {simulate_oom_above: 6}\n"))
    assert reports[-1]["orch.micro_batch"] == 4 and reports[-1]["orch.accum"] == 4
    assert reports[-1]["orch.oom_backoffs"] == 0
    reports = run(sweep(tmp_path, micro="auto"))  # no limit on a CPU: one pass per step
    assert reports[-1]["orch.micro_batch"] == 16 and reports[-1]["orch.accum"] == 1


def test_peak_memory_and_throughput_are_reported(tmp_path: Path) -> None:
    (report,) = run(sweep(tmp_path, micro=8))
    assert report["train/peak_mem_mb"] > 10  # a Python process with torch loaded
    assert report["train/samples_per_s"] > 0
    assert report["orch.lr_scaled"] == 0.05


def test_ema_weights_are_evaluated_and_saved(tmp_path: Path) -> None:
    plain = run(sweep(tmp_path, micro=8), tmp_path / "plain")
    path = tmp_path / "ema.yaml"
    path.write_text(
        sweep(tmp_path, micro=8)
        .read_text()
        .replace(
            "train: {epochs: 1, grad_clip: null, seed: 3}",
            "train: {epochs: 1, grad_clip: null, seed: 3, ema: {decay: 0.5}}",
        )
    )
    with_ema = run(path, tmp_path / "ema")
    assert with_ema[0]["train/loss"] == plain[0]["train/loss"]  # the same training ...
    assert with_ema[0]["val/mse"] != plain[0]["val/mse"]  # ... a different model evaluated
    a = torch.load(tmp_path / "plain" / "model.pt")
    b = torch.load(tmp_path / "ema" / "model.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a if k in b)


def test_deepspeed_config_takes_batch_and_clipping_from_the_sweep(tmp_path: Path) -> None:
    from orchestrator.training.parts import deepspeed_config
    from orchestrator.training.spec import resolve

    root = Path(__file__).resolve().parents[2]
    path = sweep(tmp_path, micro=4, workers=2)
    path.write_text(
        path.read_text().replace("grad_clip: null", "grad_clip: 0.1")
        + f"backend: {{kind: deepspeed, deepspeed_config: '{root}/launch/deepspeed_zero2.json'}}\n"
    )
    config = load_sweep(path)
    trial = resolve(TrialSpec(config.model_dump(by_alias=True, mode="json"), {}, str(tmp_path)))
    ds = deepspeed_config(trial, trial.plan)
    assert ds["zero_optimization"]["stage"] == 2 and ds["zero_optimization"]["overlap_comm"]
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (4, 2)
    assert ds["train_batch_size"] == 16 and ds["gradient_clipping"] == 0.1
    z3 = json.loads((root / "launch/deepspeed_zero3_offload.json").read_text())
    assert z3["zero_optimization"]["offload_param"]["device"] == "cpu"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "backend: {kind: deepspeed, zero_stage: 3}\n",
            "train.ema: an EMA of the weights needs whole parameters",
        ),
        ("backend: {kind: deepspeed}\n", "batch.micro: auto needs backend.kind: ddp"),
    ],
)
def test_deepspeed_cross_checks(tmp_path: Path, extra: str, message: str) -> None:
    path = sweep(tmp_path, micro="auto" if "zero_stage" not in extra else 4, extra=extra)
    path.write_text(path.read_text().replace("seed: 3}", "seed: 3, ema: {decay: 0.9}}"))
    with pytest.raises(ConfigErrors, match=message):
        load_sweep(path)

"""Each phase of the trial loop on its own (one CPU process, regression task): parts, batch
fit, one epoch, the epoch report, the divergence verdict, publishing; and the per-epoch
divergence check the loop shares with the ``command`` task."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from orchestrator.config import load_sweep
from orchestrator.divergence import DivergenceConfig
from orchestrator.divergence.epoch_check import EpochCheck
from orchestrator.search_space.space import SearchSpace
from orchestrator.training.batch_fit import BatchFit
from orchestrator.training.epoch import EpochTotals, train_epoch
from orchestrator.training.loop import (
    Publisher,
    bookkeeping,
    epoch_metrics,
    epoch_report,
    judge,
    nonfinite_stop,
    oom_stop,
)
from orchestrator.training.memory_cache import lookup, memory_key
from orchestrator.training.parts import TrialParts, build_parts
from orchestrator.training.spec import TrialSpec, resolve
from orchestrator.training.weighting import LossWeighting

SWEEP = """\
name: phases
task: {kind: regression, num_train: 64, num_val: 16, hidden: 8}
optim: {name: sgd, lr: 0.05, momentum: 0.0, weight_decay: 0.0}
batch: {effective: 16, micro: MICRO}
train: {epochs: 2, grad_clip: null, seed: 3}
objective: {metric: val/mse, mode: min}
"""


def trial(tmp_path: Path, micro: int | str = 16, extra: str = "", params: dict | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("MICRO", str(micro)) + extra)
    config = load_sweep(path)
    sampled = dict(params or {})
    sampled.update(SearchSpace(config).derived(sampled))
    return resolve(
        TrialSpec(config.model_dump(by_alias=True, mode="json"), sampled, str(tmp_path))
    )


def ready(tmp_path: Path, **kw) -> tuple[TrialParts, BatchFit, LossWeighting]:
    resolved = trial(tmp_path, **kw)
    parts = build_parts(resolved)
    fit = BatchFit(resolved, None, main=True)
    assert fit.start(parts) is None
    weighting = LossWeighting(resolved.loss, parts.components)
    parts.start_ema()
    return parts, fit, weighting


# --- parts ---------------------------------------------------------------------------------


def test_parts_are_built_seeded_and_in_order(tmp_path):
    a = build_parts(trial(tmp_path))
    b = build_parts(trial(tmp_path))
    assert a.components == ("mse", "l1")
    assert len(a.train_set) == 64 and len(a.val_set) == 16
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)  # train.seed decides the initial weights
    assert a.optimizer.param_groups[0]["lr"] == 0.05
    assert a.ema is None and a.evaluated_model() is a.accelerator.unwrap_model(a.model)
    assert set(a.weights_state()) == {"0.weight", "0.bias", "2.weight", "2.bias"}


# --- batch fit ----------------------------------------------------------------------------


def test_back_off_halves_the_micro_batch_and_remembers_it(tmp_path):
    resolved = trial(tmp_path, micro=16)
    parts = build_parts(resolved)
    cache = tmp_path / "memory.json"
    fit = BatchFit(resolved, str(cache), main=True)
    assert fit.start(parts) is None and fit.plan.micro == 16
    assert fit.back_off(parts) is None
    assert (fit.plan.micro, fit.plan.accum, fit.backoffs) == (8, 2, ["16->8"])
    assert parts.accelerator.gradient_accumulation_steps == 2
    assert lookup(str(cache), memory_key(resolved, 16)) == (True, 8)
    for _ in range(3):  # 8 -> 4 -> 2 -> 1
        assert fit.back_off(parts) is None
    assert fit.back_off(parts) == "the micro-batch is already 1"
    assert lookup(str(cache), memory_key(resolved, 16)) == (True, None)
    # the next trial of the same configuration does not try at all
    again = BatchFit(resolved, str(cache), main=True)
    assert "not even a micro-batch of 1 fits" in (again.start(build_parts(resolved)) or "")


def test_start_takes_what_an_earlier_trial_learned_and_auto_probes(tmp_path):
    resolved = trial(tmp_path, micro=16)
    cache = tmp_path / "memory.json"
    first = BatchFit(resolved, str(cache), main=True)
    first.back_off(build_parts(resolved))
    second = BatchFit(resolved, str(cache), main=True)
    assert second.start(build_parts(resolved)) is None
    assert (second.plan.micro, second.backoffs) == (8, [])
    # auto with room for 6 samples per pass: 16 and 8 fail, 4 fits
    auto = trial(tmp_path, micro="auto", extra="backend: {simulate_oom_above: 6}\n")
    fit = BatchFit(auto, None, main=True)
    assert fit.start(build_parts(auto)) is None
    assert (fit.plan.micro, fit.plan.accum) == (4, 4)


# --- one epoch ------------------------------------------------------------------------------


def test_an_epoch_takes_its_steps_and_sums_its_losses(tmp_path):
    parts, fit, weighting = ready(tmp_path, micro=8)
    end = train_epoch(parts, fit, weighting, 0, step=10)
    # 64 samples / 16 per step = 4 steps of 2 micro-batches
    assert (end.totals.steps, end.step, end.totals.samples) == (4, 14, 64)
    assert end.totals.sums[0].item() == 8  # micro-batches
    assert len(end.totals.grad_norms) == 4 and end.totals.skipped == 0
    assert end.nonfinite is None and end.out_of_memory is None
    assert parts.schedule.last_epoch == 4  # stepped once per optimizer step


def test_an_out_of_memory_pass_is_redone_smaller_with_the_same_result(tmp_path):
    limited = ready(tmp_path / "a", micro=16, extra="backend: {simulate_oom_above: 5}\n")
    direct = ready(tmp_path / "b", micro=4)
    end = train_epoch(*limited, 0, step=0)
    train_epoch(*direct, 0, step=0)
    assert end.step == 4 and limited[1].backoffs == ["16->8", "8->4"]
    for a, b in zip(limited[0].model.parameters(), direct[0].model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_nothing_fits_ends_the_epoch_with_the_reason(tmp_path):
    parts, fit, weighting = ready(tmp_path, micro=2, extra="backend: {simulate_oom_above: 0}\n")
    end = train_epoch(parts, fit, weighting, 0, step=0)
    assert end.step == 0 and end.out_of_memory is not None
    assert end.out_of_memory.startswith("the micro-batch is already 1: a pass over 1 samples")


def test_a_nan_loss_ends_the_epoch_at_that_step(tmp_path):
    parts, fit, weighting = ready(tmp_path, micro=8, params={"loss.weight.mse": 1e39})
    end = train_epoch(parts, fit, weighting, 1, step=4)
    assert end.step == 5 and end.totals.steps == 1
    assert end.nonfinite is not None and end.nonfinite.tolist() == [2.0, 1.0]
    stop = nonfinite_stop(parts, fit, end, 1)
    assert stop["orch.stop_reason"] == "nonfinite" and math.isnan(stop["train/loss"])
    assert stop["orch.stop_detail"] == (
        "training loss became NaN/Inf at optimizer step 5 (epoch 2)"
    )
    assert (stop["orch.step"], stop["orch.epoch"], stop["orch.stop_step"]) == (5, 2, 5)


# --- reports -------------------------------------------------------------------------------


def test_epoch_metrics_are_means_per_micro_batch():
    sums = torch.tensor([4.0, 10.0, 6.0, 2.0, 12.0, 8.0], dtype=torch.float64)
    assert epoch_metrics(sums, ("mse", "l1")) == {
        "train/loss": 2.5,
        "train/loss_mse": 1.5,
        "train/raw_mse": 3.0,
        "train/loss_l1": 0.5,
        "train/raw_l1": 2.0,
    }


def test_bookkeeping_and_oom_stop(tmp_path):
    parts, fit, _ = ready(tmp_path, micro=8)
    fit.backoffs.append("16->8")
    assert bookkeeping(parts, fit, 6, 1) == {
        "orch.step": 6,
        "orch.epoch": 2,
        "orch.samples_seen": 96,
        "orch.micro_batch": 8,
        "orch.accum": 2,
        "orch.oom_backoffs": 1,
        "orch.lr_scaled": 0.05,
    }
    stop = oom_stop(parts, fit, 6, 1, "why")
    assert stop["orch.stop_detail"] == "out of memory at micro-batch 8; why"
    assert (stop["orch.stop_reason"], stop["orch.stop_step"]) == ("oom", 6)


def test_epoch_report_has_training_evaluation_and_bookkeeping(tmp_path):
    parts, fit, weighting = ready(tmp_path, micro=8)
    end = train_epoch(parts, fit, weighting, 0, step=0)
    val_loader = torch.utils.data.DataLoader(parts.val_set, batch_size=8)
    report = epoch_report(parts, fit, weighting, end, val_loader, 0)
    assert report["train/loss"] == pytest.approx(
        end.totals.sums[1].item() / end.totals.sums[0].item()
    )
    assert report["train/grad_norm"] == pytest.approx(sum(end.totals.grad_norms) / 4)
    assert report["train/skipped_frac"] == 0.0 and report["train/lr"] == 0.05
    assert report["val/mse"] > 0 and report["orch.step"] == 4 and report["orch.epoch"] == 1


def test_judge_writes_the_reason_into_the_report(tmp_path):
    parts, _, _ = ready(tmp_path)
    config = DivergenceConfig.model_validate(
        {
            "plateau": {
                "metric": "val/mse",
                "window": 2,
                "warmup": 2,
                "min_improvement": 0.5,
                "min_progress": None,
            }
        }
    )
    check = EpochCheck(config, ("val/mse", "min"))
    # the best improves 15% over the last 2 reports (< 50%): flat at the 3rd
    reports = [{"val/mse": 1.0}, {"val/mse": 0.9}, {"val/mse": 0.85}]
    assert not judge(parts, check, reports[0], 4)
    assert not judge(parts, check, reports[1], 8)
    assert judge(parts, check, reports[2], 12)
    assert reports[2]["orch.stop_reason"] == "plateau" and reports[2]["orch.stop_step"] == 12
    assert "improved 15.0% over the last 2 reports" in reports[2]["orch.stop_detail"]
    assert check.history == reports


def test_publisher_writes_weights_before_the_report(tmp_path):
    parts, fit, _ = ready(tmp_path)
    out = tmp_path / "model"
    seen: list[bool] = []
    publish = Publisher(
        parts, fit, None, str(out), lambda m: seen.append((out / "model.pt").exists())
    )
    publish({"orch.epoch": 1}, final=False)
    assert seen == [True]
    saved = torch.load(out / "model.pt")
    assert torch.equal(saved["0.weight"], parts.weights_state()["0.weight"])
    silent = Publisher(parts, fit, None, None, seen.append)
    silent({"x": 1}, final=False)
    assert seen[-1] == {"x": 1}


# --- the per-epoch check shared with the command task ------------------------------------


def test_epoch_check_keeps_history_and_fires_on_the_report_that_diverges():
    check = EpochCheck(DivergenceConfig(), ("val/mse", "min"))
    assert check.add({"train/loss": 1.0}) is None
    assert check.add({"train/loss": 2.0}, judge=False) is None  # a rank without the verdict
    reason = check.add({"train/loss": math.nan})
    assert reason is not None and reason.code == "nonfinite" and reason.index == 2
    assert len(check.history) == 3


def test_empty_totals_have_room_for_every_term():
    totals = EpochTotals.empty(("a", "b", "c"))
    assert totals.sums.shape == (8,) and totals.sums.dtype == torch.float64

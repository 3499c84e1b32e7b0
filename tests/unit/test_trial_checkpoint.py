"""Trial checkpoints: a trial restored from one ends with exactly the metrics of a run that
was never interrupted (one CPU process, regression task), and what a checkpoint holds."""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.config import load_sweep
from orchestrator.search_space.space import SearchSpace
from orchestrator.training import checkpoint
from orchestrator.training.loop import run_trial
from orchestrator.training.spec import TrialSpec

# every piece of state a checkpoint must carry is in use: AdamW moments, LR warm-up, the
# EMA, calibrated target_share weights, an OOM back-off (16 -> 8 -> 4), the rules' history
SWEEP = """\
name: ckpt
task: {kind: regression, num_train: 64, num_val: 16, hidden: 8}
loss: {weight: {mse: 1.0, l1: 0.5}, weighting: target_share, share: {mse: 0.7, l1: 0.3}}
optim: {name: adamw, lr: 0.02, warmup_steps: 6}
batch: {effective: 16, micro: 16}
train: {epochs: 5, grad_clip: 1.0, seed: 7, ema: {decay: 0.9, warmup: 3}, checkpoint: CKPT}
backend: {simulate_oom_above: 5}
objective: {metric: val/mse, mode: min}
"""

#: measured, not deterministic
TIMINGS = ("train/samples_per_s", "train/peak_mem_mb")


def spec(tmp_path: Path, ckpt: str = "{every: 1, keep: 2}") -> TrialSpec:
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("CKPT", ckpt))
    config = load_sweep(path)
    params = SearchSpace(config).derived({})
    return TrialSpec(config.model_dump(by_alias=True, mode="json"), params, str(tmp_path))


class Recorder:
    """A report function that keeps every report and a copy of every checkpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reports: list[dict] = []
        self.checkpoints: dict[int, Path] = {}
        self.save_s: list[float] = []

    def __call__(self, metrics: dict, folder: str | None = None) -> None:
        self.reports.append(dict(metrics))
        if folder is not None:
            epoch = int(metrics["orch.epoch"])
            self.checkpoints[epoch] = shutil.copytree(folder, self.folder / f"epoch-{epoch}")


def comparable(report: dict) -> dict:
    return {
        k: v for k, v in report.items() if k not in TIMINGS and k != "orch.restored_from_epoch"
    }


def test_a_restored_trial_ends_with_exactly_the_uninterrupted_metrics(tmp_path):
    whole = Recorder(tmp_path)
    run_trial(spec(tmp_path), whole, checkpoints=True)
    assert [r["orch.epoch"] for r in whole.reports] == [1, 2, 3, 4, 5]
    assert whole.reports[-1]["orch.oom_backoffs"] == 2  # the back-off happened in epoch 1
    assert sorted(whole.checkpoints) == [1, 2, 3, 4]  # none after the last epoch
    for epoch in (1, 3):
        state = checkpoint.load(whole.checkpoints[epoch], rank=0)
        assert (state["epoch"], state["step"]) == (epoch, 4 * epoch)
        resumed = Recorder(tmp_path / f"resumed-{epoch}")
        run_trial(spec(tmp_path), resumed, restored=state, checkpoints=True)
        assert [r["orch.epoch"] for r in resumed.reports] == list(range(epoch + 1, 6))
        assert all(r["orch.restored_from_epoch"] == epoch for r in resumed.reports)
        # bit for bit: == on floats, not approx
        assert [comparable(r) for r in resumed.reports] == [
            comparable(r) for r in whole.reports[epoch:]
        ]


def test_a_checkpoint_holds_everything_to_continue(tmp_path):
    whole = Recorder(tmp_path)
    run_trial(spec(tmp_path, "{every: 2, keep: 1}"), whole, checkpoints=True)
    assert sorted(whole.checkpoints) == [2, 4]
    state = checkpoint.load(whole.checkpoints[2], rank=0)
    assert state["plan"] == [16, 4, 1] and state["backoffs"] == ["16->8", "8->4"]
    assert set(state["loss_weights"]) == {"mse", "l1"}
    assert [h["orch.epoch"] for h in state["history"]] == [1, 2]
    assert state["schedule"]["last_epoch"] == 8 and state["ema"]["n_averaged"].item() == 8
    assert state["optimizer"]["state"]  # AdamW moments
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}


def test_checkpoints_can_be_switched_off(tmp_path):
    whole = Recorder(tmp_path)
    run_trial(spec(tmp_path, "null"), whole, checkpoints=True)
    assert len(whole.reports) == 5 and whole.checkpoints == {}

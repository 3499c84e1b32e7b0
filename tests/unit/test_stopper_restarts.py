"""The divergence stopper and a trial Tune restarts (#19): the restarted attempt is judged
against its checkpoint's history (or none), never against the dead attempt's later reports."""

from __future__ import annotations

from orchestrator.divergence import ExplosionDetector
from orchestrator.tuning.stopper import DivergenceStopper


def result(epoch: int, loss: float) -> dict:
    return {"orch.epoch": epoch, "orch.step": 10 * epoch, "train/loss": loss}


def test_a_restart_without_checkpoint_starts_an_empty_history():
    stopper = DivergenceStopper(ExplosionDetector(factor=10.0, reference="best"))
    # the first attempt learns: 5.0 -> 1.0 -> 0.2, then its process dies
    assert not any(stopper("t1", result(e, v)) for e, v in [(1, 5.0), (2, 1.0), (3, 0.2)])
    # the retry starts over at epoch 1 with the loss of an untrained model: 5.0 > 10 x 0.2
    # against the dead attempt's best, but it is this attempt's first report
    first = result(1, 5.0)
    assert not stopper("t1", first)
    assert "orch.stop_reason" not in first
    assert stopper.histories["t1"] == [{"train/loss": 5.0}]


def test_a_restart_from_a_checkpoint_keeps_the_history_up_to_it():
    stopper = DivergenceStopper(ExplosionDetector(factor=10.0, reference="best"))
    for e, v in [(1, 5.0), (2, 1.0), (3, 0.05)]:  # epoch 3 was never checkpointed
        stopper("t1", result(e, v))
    # restored from epoch 2's checkpoint: epoch 3 again, 0.8 is fine against 1.0 (but would
    # be 16 x the dead attempt's 0.05)
    assert not stopper("t1", result(3, 0.8))
    assert stopper.histories["t1"] == [
        {"train/loss": 5.0},
        {"train/loss": 1.0},
        {"train/loss": 0.8},
    ]
    # and the rules still apply to the restored trial: 12.0 > 10 x 0.8
    exploded = result(4, 12.0)
    assert stopper("t1", exploded)
    assert exploded["orch.stop_reason"] == "explosion" and exploded["orch.stop_step"] == 40
    assert stopper.histories.keys() == {"t1"}

"""loss.weighting: fixed, balance and target_share against hand-computed magnitudes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from orchestrator.tasks.base import LossConfig, LossOutput
from orchestrator.training.weighting import (
    LossWeighting,
    balanced_total,
    target_share_weights,
)

# ---- LossOutput.weighted_sum -------------------------------------------------------------


def test_weighted_sum_fills_total_raw_weighted_terms_and_weights() -> None:
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    out = LossOutput.weighted_sum({"a": a, "b": b}, {"a": 0.5, "b": 4.0}, "sum")
    assert out.total.item() == pytest.approx(0.5 * 2 + 4 * 3)
    assert out.raw == {"a": 2.0, "b": 3.0} and not out.raw["a"].requires_grad
    assert out.weighted["b"].item() == pytest.approx(12.0)
    assert out.terms["a"] is a and out.weights == {"a": 0.5, "b": 4.0}
    assert out.reduction == "sum"


# ---- balance -----------------------------------------------------------------------------


def test_balance_gives_each_term_the_reference_magnitude_times_its_weight() -> None:
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(8.0, requires_grad=True)
    total, effective = balanced_total({"a": a, "b": b}, {"a": 1.0, "b": 0.5}, "a")
    # a + 0.5 * b * (2 / 8): the value of b's term is 0.5 * |a| = 1
    assert total.item() == pytest.approx(2.0 + 1.0)
    assert effective == {"a": 1.0, "b": pytest.approx(0.125)}
    total.backward()
    # the ratio is detached: b's gradient is its multiplier, not 0 (as the value suggests)
    assert a.grad is not None and b.grad is not None
    assert a.grad.item() == pytest.approx(1.0)
    assert b.grad.item() == pytest.approx(0.125)


def test_balance_reference_is_selectable() -> None:
    terms = {"a": torch.tensor(2.0), "b": torch.tensor(8.0)}
    total, effective = balanced_total(terms, {"a": 1.0, "b": 0.5}, "b")
    # a * (8 / 2) + 0.5 * b
    assert total.item() == pytest.approx(8.0 + 4.0)
    assert effective == {"a": pytest.approx(4.0), "b": 0.5}


def test_balance_survives_a_term_that_is_zero() -> None:
    terms = {"a": torch.tensor(2.0), "b": torch.tensor(0.0, requires_grad=True)}
    total, _ = balanced_total(terms, {"a": 1.0, "b": 1.0}, "a")
    assert torch.isfinite(total) and total.item() == pytest.approx(2.0)


# ---- target_share ------------------------------------------------------------------------


def test_target_share_weights_by_hand() -> None:
    magnitudes = {"cls": 2.0, "bbox": 0.5, "giou": 1.0}
    fixed = {"cls": 1.0, "bbox": 5.0, "giou": 2.0}
    # shares 1:2:1 -> 0.25, 0.5, 0.25 of the fixed weights' total 2 + 2.5 + 2 = 6.5
    weights = target_share_weights(magnitudes, {"cls": 1.0, "bbox": 2.0, "giou": 1.0}, fixed)
    assert weights == {
        "cls": pytest.approx(0.25 * 6.5 / 2.0),
        "bbox": pytest.approx(0.5 * 6.5 / 0.5),
        "giou": pytest.approx(0.25 * 6.5 / 1.0),
    }
    contributions = [weights[c] * magnitudes[c] for c in magnitudes]
    assert sum(contributions) == pytest.approx(6.5)  # the overall scale is kept


def test_target_share_scale_falls_back_to_the_raw_sum_when_fixed_weights_are_zero() -> None:
    weights = target_share_weights({"a": 3.0, "b": 1.0}, {"a": 1, "b": 1}, {"a": 0.0, "b": 0.0})
    # total 3 + 1 = 4, half each
    assert weights == {"a": pytest.approx(2.0 / 3.0), "b": pytest.approx(2.0)}


def test_target_share_zero_share_drops_a_term_even_when_it_measured_zero() -> None:
    weights = target_share_weights({"a": 2.0, "b": 0.0}, {"a": 1, "b": 0}, {"a": 1, "b": 1})
    assert weights == {"a": pytest.approx(1.0), "b": 0.0}


@pytest.mark.parametrize(
    ("magnitudes", "shares", "message"),
    [
        ({"a": 1.0, "b": 0.0}, {"a": 1, "b": 1}, "loss.share.b: the b term was 0"),
        ({"a": 1.0, "b": 1.0}, {"a": 1}, "loss.share: target_share needs a share for every"),
        ({"a": 1.0}, {"a": 1, "zz": 1}, "loss.share.zz: not a loss component"),
        ({"a": 1.0}, {"a": 0}, "loss.share: shares must not all be 0"),
    ],
)
def test_target_share_errors_name_the_key(
    magnitudes: dict[str, float], shares: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        target_share_weights(magnitudes, shares, dict.fromkeys(magnitudes, 1.0))


# ---- LossWeighting in the loop's place ---------------------------------------------------


def _output(a: float, b: float, weights: dict[str, float]) -> LossOutput:
    terms = {"a": torch.tensor(a, requires_grad=True), "b": torch.tensor(b, requires_grad=True)}
    return LossOutput.weighted_sum(terms, weights)


def test_fixed_passes_the_task_output_through_and_reports_no_weights() -> None:
    weighting = LossWeighting(LossConfig(), ("a", "b"))
    out = _output(1.0, 2.0, {"a": 1.0, "b": 3.0})
    assert weighting.apply(out) is out
    assert weighting.epoch_metrics() == {}


def test_balance_epoch_metrics_average_the_effective_weights() -> None:
    weighting = LossWeighting(LossConfig(weighting="balance"), ("a", "b"))
    first = weighting.apply(_output(2.0, 8.0, {"a": 1.0, "b": 1.0}))  # b scaled by 1/4
    weighting.apply(_output(3.0, 1.0, {"a": 1.0, "b": 1.0}))  # b scaled by 3
    assert first.total.item() == pytest.approx(4.0)
    assert first.weighted["b"].item() == pytest.approx(2.0)  # = |a|
    assert weighting.epoch_metrics() == {
        "train/weight_a": pytest.approx(1.0),
        "train/weight_b": pytest.approx((0.25 + 3.0) / 2),
    }
    assert weighting.epoch_metrics() == {}  # reset after each epoch


def test_non_fixed_weighting_needs_the_task_terms() -> None:
    weighting = LossWeighting(LossConfig(weighting="balance"), ("a", "b"))
    bare = LossOutput(total=torch.tensor(1.0), raw={"a": torch.tensor(1.0)})
    with pytest.raises(RuntimeError, match=r"LossOutput\.terms"):
        weighting.apply(bare)


class _SumTask:
    """Terms with known magnitudes: ``a`` sums the batch's values, ``b`` is always 3; the
    model (a BatchNorm) is run in train mode as a real task's forward would."""

    def collate(self, samples: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(samples)

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> LossOutput:
        model.train()
        model(batch.reshape(-1, 1))
        terms = {"a": batch.sum(), "b": torch.tensor(3.0)}
        return LossOutput.weighted_sum(terms, {"a": 1.0, "b": 1.0})


@dataclass
class _OneProcess:
    """What calibrate needs of an Accelerator, for one process (no all-reduce)."""

    process_index: int = 0
    num_processes: int = 1
    device = torch.device("cpu")

    def reduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        return tensor


DATA = [torch.tensor(float(v)) for v in range(1, 9)]  # 1..8, sum 36


def test_calibrate_measures_mean_magnitudes_and_restores_buffers() -> None:
    config = LossConfig(weighting="target_share", share={"a": 1, "b": 1}, calibration_batches=4)
    weighting = LossWeighting(config, ("a", "b"))
    model = torch.nn.BatchNorm1d(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # 4 micro-batches of 2 visit each of the 8 samples once: mean |a| = 36 / 4 = 9, |b| = 3;
    # fixed total 12, half each -> a: 6 / 9, b: 6 / 3
    weights = weighting.calibrate(_SumTask(), model, DATA, 2, _OneProcess(), seed=0)
    assert weights == {"a": pytest.approx(6 / 9), "b": pytest.approx(2.0)}
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    out = weighting.apply(_SumTask().loss(model, torch.tensor([1.0, 2.0])))
    assert out.total.item() == pytest.approx(6 / 9 * 3 + 2.0 * 3)
    assert weighting.epoch_metrics()["train/weight_b"] == pytest.approx(2.0)

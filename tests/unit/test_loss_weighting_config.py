"""loss.weighting in sweep files: clear errors naming the key, and the loop applying it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_sweep
from orchestrator.errors import ConfigErrors
from tests.unit.test_trial_loop import REGRESSION, run

RTDETR = """\
name: w
task: {kind: rtdetr}
loss: {weighting: target_share, share: {cls: 1.0, bbox: 0.4, giou: 0.4}}
objective: {metric: val/map, mode: max}
space:
  loss.share.bbox: {float: [0.2, 0.6]}
"""


def _errors(tmp_path: Path, text: str) -> str:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as info:
        load_sweep(path)
    return str(info.value)


def test_a_searched_share_is_valid_for_any_task(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(RTDETR)
    config = load_sweep(path)
    assert config.loss.weighting == "target_share"
    assert config.loss.share == {"cls": 1.0, "bbox": 0.4, "giou": 0.4}


def test_share_for_an_unknown_component_names_the_key(tmp_path: Path) -> None:
    text = RTDETR.replace("giou: 0.4}", "giou: 0.4, mask: 1.0}")
    message = _errors(tmp_path, text)
    assert "w.yaml:3: loss.share.mask: not a loss component of task 'rtdetr'" in message
    assert "components: cls, bbox, giou" in message


def test_searched_share_for_an_unknown_component_names_the_space_key(tmp_path: Path) -> None:
    text = RTDETR + "  loss.share.bboxx: {float: [0.2, 0.6]}\n"
    assert "space.loss.share.bboxx: not a loss component" in _errors(tmp_path, text)


def test_shares_need_target_share_weighting(tmp_path: Path) -> None:
    text = RTDETR.replace("weighting: target_share", "weighting: balance")
    message = _errors(tmp_path, text)
    assert "loss.share: applies only with loss.weighting: target_share" in message
    assert "space.loss.share.bbox: applies only with loss.weighting: target_share" in message


def test_shares_are_fine_when_target_share_is_one_searched_choice(tmp_path: Path) -> None:
    text = RTDETR.replace("weighting: target_share", "weighting: fixed")
    text += "  loss.weighting: {choice: [fixed, balance, target_share]}\n"
    (tmp_path / "w.yaml").write_text(text)
    assert load_sweep(tmp_path / "w.yaml").space["loss.weighting"].choice


def test_target_share_needs_a_share_for_every_component(tmp_path: Path) -> None:
    text = RTDETR.replace("bbox: 0.4, giou: 0.4}", "bbox: 0.4}")
    assert "loss.share: target_share needs a share for every component" in (
        _errors(tmp_path, text)
    )
    assert "missing: giou" in _errors(tmp_path, text)


def test_balance_reference_must_be_a_component_used_by_balance(tmp_path: Path) -> None:
    text = REGRESSION.replace(
        "loss: {weight: {mse: 1.0, l1: 0.5}}",
        "loss: {weight: {mse: 1.0, l1: 0.5}, weighting: balance, balance_reference: l2}",
    )
    assert "loss.balance_reference: not a loss component of task 'regression'" in (
        _errors(tmp_path, text)
    )
    text = text.replace("weighting: balance, balance_reference: l2", "balance_reference: l1")
    assert "loss.balance_reference: applies only with loss.weighting: balance" in (
        _errors(tmp_path, text)
    )


def test_shares_must_not_be_negative_or_all_zero(tmp_path: Path) -> None:
    text = RTDETR.replace("cls: 1.0, bbox: 0.4, giou: 0.4", "cls: -1.0, bbox: 0.4, giou: 0.4")
    assert "loss.share.cls: Input should be greater than or equal to 0" in (
        _errors(tmp_path, text)
    )
    text = RTDETR.replace("cls: 1.0, bbox: 0.4, giou: 0.4", "cls: 0, bbox: 0, giou: 0")
    assert "loss.share: shares must not all be 0" in _errors(tmp_path, text)


# ---- in the trial loop -------------------------------------------------------------------


def test_balance_in_the_loop_gives_every_term_the_reference_magnitude(tmp_path: Path) -> None:
    reports = run(tmp_path, REGRESSION, {"loss.weighting": "balance"})
    for r in reports:
        # per micro-batch l1's term is 0.5 x |mse|, so the epoch means keep that ratio
        assert r["train/loss_l1"] == pytest.approx(0.5 * r["train/loss_mse"])
        assert r["train/loss"] == pytest.approx(r["train/loss_mse"] + r["train/loss_l1"])
        assert r["train/weight_mse"] == 1.0
        assert r["train/weight_l1"] > 0
    assert reports[-1]["val/mse"] < reports[0]["val/mse"]


def test_target_share_in_the_loop_fixes_weights_once_and_reports_them(tmp_path: Path) -> None:
    text = REGRESSION.replace(
        "loss: {weight: {mse: 1.0, l1: 0.5}}",
        "loss: {weight: {mse: 1.0, l1: 0.5}, weighting: target_share, "
        "share: {mse: 0.25, l1: 0.75}}",
    )
    reports = run(tmp_path, text)
    weights = {(r["train/weight_mse"], r["train/weight_l1"]) for r in reports}
    assert len(weights) == 1  # calibrated once, then constant
    for r in reports:
        assert r["train/loss_l1"] == pytest.approx(r["train/weight_l1"] * r["train/raw_l1"])
        assert r["train/loss_mse"] == pytest.approx(r["train/weight_mse"] * r["train/raw_mse"])
    # at the start (before any update) l1 carried 3x mse's share of the total
    first = reports[0]
    assert first["train/loss_l1"] > first["train/loss_mse"]

"""Hand-computed checks of the box utilities and the classification/box losses."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.losses import (
    background_class_weights,
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    elementwise_giou,
    elementwise_iou,
    giou_box_loss,
    l1_box_loss,
    pairwise_giou,
    pairwise_iou,
    sigmoid_bce_loss,
    sigmoid_focal_loss,
    softmax_ce_loss,
    varifocal_loss,
)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---- boxes -------------------------------------------------------------------------------


def test_box_conversions_round_trip() -> None:
    cxcywh = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.5, 0.1]])
    xyxy = box_cxcywh_to_xyxy(cxcywh)
    expected = torch.tensor([[0.4, 0.3, 0.6, 0.7], [0.0, 0.7, 0.5, 0.8]])
    torch.testing.assert_close(xyxy, expected)
    torch.testing.assert_close(box_xyxy_to_cxcywh(expected), cxcywh)


def test_iou_of_two_unit_squares_offset_by_half() -> None:
    # [0,2]x[0,2] and [1,3]x[1,3]: intersection 1, union 4 + 4 - 1 = 7
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    iou, union = pairwise_iou(a, b)
    assert iou.shape == (1, 1)
    assert iou.item() == pytest.approx(1 / 7)
    assert union.item() == pytest.approx(7.0)
    assert elementwise_iou(a, b).item() == pytest.approx(1 / 7)


def test_giou_uses_the_enclosing_box() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # enclosing box [0,3]x[0,3] = 9, union 7 -> GIoU = 1/7 - 2/9
    assert pairwise_giou(a, b).item() == pytest.approx(1 / 7 - 2 / 9)
    # disjoint: [0,1]^2 and [2,3]x[0,1]; enclosing 3, union 2 -> 0 - 1/3
    c = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    d = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    assert elementwise_giou(c, d).item() == pytest.approx(-1 / 3)
    assert pairwise_giou(c, c).item() == pytest.approx(1.0)


def test_pairwise_shapes() -> None:
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 1.0]])
    iou, _ = pairwise_iou(a, b)
    assert iou.shape == (2, 3)
    # box 1 (area 4) vs box b2 (area 2) contained: 2/4
    assert iou[1, 2].item() == pytest.approx(0.5)
    assert iou[0, 1].item() == 0.0


def test_l1_loss_normalised_by_box_count() -> None:
    pred = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])
    target = torch.tensor([[0.6, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1]])
    # |diff| sum = 0.1 + 0.2 = 0.3, over 4 target boxes in the batch
    assert l1_box_loss(pred, target, num_boxes=4).item() == pytest.approx(0.3 / 4)
    # zero boxes: the divisor is clamped to 1, not a division by zero
    empty = torch.zeros(0, 4)
    assert l1_box_loss(empty, empty, num_boxes=0).item() == 0.0


def test_giou_loss() -> None:
    # cxcywh of [0,2]^2 and [1,3]^2 (see test above), plus an identical pair (loss 0)
    pred = torch.tensor([[1.0, 1.0, 2.0, 2.0], [5.0, 5.0, 1.0, 1.0]])
    target = torch.tensor([[2.0, 2.0, 2.0, 2.0], [5.0, 5.0, 1.0, 1.0]])
    expected = (1 - (1 / 7 - 2 / 9)) / 2
    assert giou_box_loss(pred, target, num_boxes=2).item() == pytest.approx(expected)


# ---- classification ----------------------------------------------------------------------


def test_sigmoid_bce_one_positive_one_negative() -> None:
    logits = torch.tensor([[[2.0, -1.0]]])  # one image, one query, two classes
    targets = torch.tensor([[[1.0, 0.0]]])
    expected = (-math.log(_sig(2.0)) - math.log(1 - _sig(-1.0))) / 1
    assert sigmoid_bce_loss(logits, targets, num_boxes=1).item() == pytest.approx(expected)
    assert sigmoid_bce_loss(logits, targets, num_boxes=2).item() == pytest.approx(expected / 2)


def test_sigmoid_focal_by_hand() -> None:
    logits = torch.tensor([[[0.5, -2.0]]])
    targets = torch.tensor([[[1.0, 0.0]]])
    alpha, gamma = 0.75, 2.0
    p_pos, p_neg = _sig(0.5), _sig(-2.0)
    pos = alpha * (1 - p_pos) ** 2 * -math.log(p_pos)
    neg = (1 - alpha) * p_neg**2 * -math.log(1 - p_neg)
    got = sigmoid_focal_loss(logits, targets, num_boxes=1, alpha=alpha, gamma=gamma)
    assert got.item() == pytest.approx(pos + neg)


def test_focal_with_gamma_zero_is_alpha_weighted_bce() -> None:
    logits = torch.tensor([[[1.0]]])
    targets = torch.tensor([[[1.0]]])
    got = sigmoid_focal_loss(logits, targets, num_boxes=1, alpha=0.3, gamma=0.0)
    assert got.item() == pytest.approx(0.3 * -math.log(_sig(1.0)))


def test_varifocal_by_hand() -> None:
    # query 0 matched to class 0 with IoU 0.6; the other element is a negative
    logits = torch.tensor([[[1.0, 0.0]]])
    labels = torch.tensor([[[1.0, 0.0]]])
    scores = torch.tensor([[[0.6, 0.0]]])
    alpha, gamma = 0.75, 2.0
    p = _sig(1.0)
    # positive: weight = score = 0.6, BCE towards the soft target 0.6
    pos = 0.6 * -(0.6 * math.log(p) + 0.4 * math.log(1 - p))
    # negative: weight alpha * p^gamma with p = sigmoid(0) = 0.5, target 0
    neg = alpha * 0.5**gamma * -math.log(1 - 0.5)
    got = varifocal_loss(logits, labels, scores, num_boxes=1, alpha=alpha, gamma=gamma)
    assert got.item() == pytest.approx(pos + neg)


def test_varifocal_weight_is_not_differentiated() -> None:
    logits = torch.tensor([[[0.0]]], requires_grad=True)
    labels = torch.zeros(1, 1, 1)
    varifocal_loss(logits, labels, torch.zeros(1, 1, 1), num_boxes=1).backward()
    # d/dx [w * BCE(x, 0)] with constant w = 0.75 * 0.5^2 is w * sigmoid(0)
    assert logits.grad is not None
    assert logits.grad.item() == pytest.approx(0.75 * 0.25 * 0.5)


def test_background_class_weights() -> None:
    torch.testing.assert_close(background_class_weights(3, 0.1), torch.tensor([1, 1, 1, 0.1]))


def test_ce_background_weight_is_a_weighted_mean() -> None:
    # two queries, two classes + background (index 2): query 0 is class 0, query 1 background
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    classes = torch.tensor([[0, 2]])
    l0 = -math.log(math.exp(2) / (math.exp(2) + 2))
    l1 = -math.log(1 / 3)
    for bg in (1.0, 1e-4):
        expected = (1.0 * l0 + bg * l1) / (1.0 + bg)
        assert softmax_ce_loss(logits, classes, bg_weight=bg).item() == pytest.approx(expected)
    # with a tiny background weight the loss is essentially the object query's alone
    assert softmax_ce_loss(logits, classes, bg_weight=1e-4).item() == pytest.approx(l0, rel=1e-3)
    assert softmax_ce_loss(logits, classes, bg_weight=1.0).item() == pytest.approx((l0 + l1) / 2)

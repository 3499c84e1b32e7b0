"""Hungarian matcher on hand-built cost cases."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.losses import classification_cost, hungarian_match


def test_boxes_alone_decide_a_crossed_assignment() -> None:
    # query 0 sits exactly on target 1 and query 1 on target 0
    pred_boxes = torch.tensor([[[0.7, 0.7, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]]])
    logits = torch.zeros(1, 2, 3)
    labels = [torch.tensor([1, 2])]
    boxes = [torch.tensor([[0.2, 0.2, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])]
    ((queries, targets),) = hungarian_match(logits, pred_boxes, labels, boxes, cost_class=0.0)
    assert queries.tolist() == [0, 1]
    assert targets.tolist() == [1, 0]


def test_class_cost_decides_when_boxes_are_equal() -> None:
    # both queries predict the same box; query 0 is confident in class 2, query 1 in class 0
    pred_boxes = torch.full((1, 2, 4), 0.5)
    logits = torch.tensor([[[-5.0, -5.0, 5.0], [5.0, -5.0, -5.0]]])
    labels = [torch.tensor([0, 2])]
    boxes = [torch.full((2, 4), 0.5)]
    for kind in ("focal", "softmax"):
        ((queries, targets),) = hungarian_match(logits, pred_boxes, labels, boxes, class_cost=kind)
        assert dict(zip(queries.tolist(), targets.tolist(), strict=True)) == {0: 1, 1: 0}


def test_more_queries_than_targets_and_empty_images() -> None:
    pred_boxes = torch.tensor(
        [[[0.1, 0.1, 0.1, 0.1], [0.5, 0.5, 0.3, 0.3], [0.9, 0.9, 0.1, 0.1]]] * 2
    )
    logits = torch.zeros(2, 3, 2)
    labels = [torch.tensor([0]), torch.zeros(0, dtype=torch.int64)]
    boxes = [torch.tensor([[0.5, 0.5, 0.3, 0.3]]), torch.zeros(0, 4)]
    first, second = hungarian_match(logits, pred_boxes, labels, boxes)
    assert first[0].tolist() == [1] and first[1].tolist() == [0]
    assert second[0].numel() == 0 and second[1].numel() == 0


def test_two_by_two_total_cost_is_minimal() -> None:
    # only L1 on cy counts (same cx, w, h): targets at cy 0.30 and 0.60, queries at 0.40, 0.15
    # costs q0->t0 .10, q0->t1 .20, q1->t0 .15, q1->t1 .45: the greedy pick q0->t0 totals
    # .10 + .45 = .55, the optimum q0->t1, q1->t0 only .20 + .15 = .35
    pred_boxes = torch.tensor([[[0.5, 0.40, 0.1, 0.1], [0.5, 0.15, 0.1, 0.1]]])
    boxes = [torch.tensor([[0.5, 0.30, 0.1, 0.1], [0.5, 0.60, 0.1, 0.1]])]
    ((queries, targets),) = hungarian_match(
        torch.zeros(1, 2, 1), pred_boxes, [torch.tensor([0, 0])], boxes,
        cost_class=0.0, cost_bbox=1.0, cost_giou=0.0,
    )  # fmt: skip
    assert dict(zip(queries.tolist(), targets.tolist(), strict=True)) == {0: 1, 1: 0}


def test_focal_class_cost_by_hand() -> None:
    logits = torch.tensor([[0.0, 2.0]])
    cost = classification_cost(logits, torch.tensor([1]), kind="focal", alpha=0.25, gamma=2.0)
    p = 1 / (1 + math.exp(-2.0))
    expected = 0.25 * (1 - p) ** 2 * -math.log(p) - 0.75 * p**2 * -math.log(1 - p)
    assert cost.shape == (1, 1)
    assert cost.item() == pytest.approx(expected, rel=1e-5)


def test_softmax_class_cost_is_negative_probability() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # probs 1/4, 3/4
    cost = classification_cost(logits, torch.tensor([1, 0]), kind="softmax")
    torch.testing.assert_close(cost, torch.tensor([[-0.75, -0.25]]))

"""Hand-computed checks of the Faster R-CNN parts: anchors, box coding, NMS, assignment,
sampling, RoI Align and the loss terms."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.tasks.detector.anchors import base_anchors, grid_anchors
from orchestrator.tasks.detector.assigner import IGNORED, NEGATIVE, POSITIVE, assign
from orchestrator.tasks.detector.box_coder import MAX_LOG_RATIO, BoxCoder, clip_boxes
from orchestrator.tasks.detector.losses import (
    Term,
    box_classification_term,
    l1_term,
    objectness_term,
)
from orchestrator.tasks.detector.nms import batched_nms, nms
from orchestrator.tasks.detector.roi_align import roi_align
from orchestrator.tasks.detector.sampler import sample

# ---- anchors -----------------------------------------------------------------------------


def test_base_anchors_keep_the_area_and_set_the_ratio() -> None:
    # stride 8, scale 1 -> side 8 (area 64); ratio h/w = 0.25 -> w = 8/0.5 = 16, h = 8*0.5 = 4
    anchors = base_anchors(8, [1.0], [0.25, 1.0])
    expected = torch.tensor([[-8.0, -2.0, 8.0, 2.0], [-4.0, -4.0, 4.0, 4.0]])
    torch.testing.assert_close(anchors, expected)


def test_grid_anchors_are_centred_on_cells_row_major() -> None:
    # a 1 x 2 map of stride 8: cell centres (4, 4) and (12, 4); two anchors per cell
    anchors = grid_anchors(1, 2, 8, [1.0], [0.25, 1.0])
    expected = torch.tensor(
        [
            [-4.0, 2.0, 12.0, 6.0],
            [0.0, 0.0, 8.0, 8.0],
            [4.0, 2.0, 20.0, 6.0],
            [8.0, 0.0, 16.0, 8.0],
        ]
    )
    torch.testing.assert_close(anchors, expected)
    # two rows: the second row's centres are 8 pixels lower
    two_rows = grid_anchors(2, 1, 8, [2.0], [1.0])
    torch.testing.assert_close(
        two_rows, torch.tensor([[-4.0, -4.0, 12.0, 12.0], [-4.0, 4.0, 12.0, 20.0]])
    )


# ---- box coding --------------------------------------------------------------------------


def test_encode_by_hand_and_with_target_stds() -> None:
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])  # centre (5, 5), 10 x 10
    box = torch.tensor([[5.0, 0.0, 15.0, 20.0]])  # centre (10, 10), 10 x 20
    # dx = (10 - 5) / 10, dy = (10 - 5) / 10, dw = log(10 / 10), dh = log(20 / 10)
    plain = BoxCoder().encode(anchor, box)
    torch.testing.assert_close(plain, torch.tensor([[0.5, 0.5, 0.0, math.log(2.0)]]))
    scaled = BoxCoder((0.1, 0.1, 0.2, 0.2)).encode(anchor, box)
    torch.testing.assert_close(scaled, torch.tensor([[5.0, 5.0, 0.0, math.log(2.0) / 0.2]]))


@pytest.mark.parametrize("stds", [(1.0, 1.0, 1.0, 1.0), (0.1, 0.1, 0.2, 0.2)])
def test_decode_inverts_encode(stds: tuple[float, ...]) -> None:
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=generator) * 50
    reference = torch.cat((xy, xy + 1 + torch.rand(20, 2, generator=generator) * 30), dim=1)
    xy = torch.rand(20, 2, generator=generator) * 50
    boxes = torch.cat((xy, xy + 1 + torch.rand(20, 2, generator=generator) * 30), dim=1)
    coder = BoxCoder(stds)
    torch.testing.assert_close(coder.decode(reference, coder.encode(reference, boxes)), boxes)


def test_decode_caps_growth_and_clip_keeps_boxes_inside() -> None:
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    huge = BoxCoder().decode(anchor, torch.tensor([[0.0, 0.0, 100.0, 0.0]]))
    # width 10 * exp(log(1000 / 16)) = 625, centred on 5; height unchanged
    width = (huge[0, 2] - huge[0, 0]).item()
    assert width == pytest.approx(10 * math.exp(MAX_LOG_RATIO)) == pytest.approx(625.0)
    clipped = clip_boxes(torch.tensor([[-5.0, 3.0, 70.0, 90.0]]), height=64, width=32)
    torch.testing.assert_close(clipped, torch.tensor([[0.0, 3.0, 32.0, 64.0]]))


# ---- NMS ---------------------------------------------------------------------------------

# A and B overlap 90 / 110 = 0.82; D is A's top half (IoU with A = 50 / 100 = 0.5, with
# B = 45 / 105 = 0.43); C touches nothing
_BOXES = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],  # A
        [1.0, 0.0, 11.0, 10.0],  # B
        [20.0, 20.0, 30.0, 30.0],  # C
        [0.0, 0.0, 10.0, 5.0],  # D
    ]
)
_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.95])


def test_nms_keeps_by_score_and_drops_overlaps_above_the_threshold() -> None:
    # 0.5: D kept; A kept (IoU 0.5 is not > 0.5); B dropped by A; C kept
    assert nms(_BOXES, _SCORES, 0.5).tolist() == [3, 0, 2]
    # 0.45: A dropped by D; B survives (0.43 with D, A is gone); C kept
    assert nms(_BOXES, _SCORES, 0.45).tolist() == [3, 1, 2]
    assert nms(_BOXES[:0], _SCORES[:0], 0.5).tolist() == []


def test_batched_nms_only_suppresses_within_a_class() -> None:
    classes = torch.tensor([0, 1, 0, 0])  # B is another class: A cannot drop it
    assert batched_nms(_BOXES, _SCORES, classes, 0.5).tolist() == [3, 0, 1, 2]


# ---- assignment and sampling -------------------------------------------------------------


def test_assigner_thresholds_and_gt_index() -> None:
    gts = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])
    candidates = torch.tensor(
        [
            [20.0, 0.0, 30.0, 10.0],  # IoU 1 with gt 1
            [0.0, 0.0, 10.0, 5.0],  # IoU 0.5 with gt 0: between the thresholds
            [0.0, 0.0, 10.0, 2.0],  # IoU 0.2 -> background
            [0.0, 0.0, 10.0, 8.0],  # IoU 0.8 with gt 0
        ]
    )
    out = assign(
        candidates,
        gts,
        pos_iou_thr=0.7,
        neg_iou_thr=0.3,
        min_pos_iou=0.3,
        match_low_quality=False,
    )
    assert out.labels.tolist() == [POSITIVE, IGNORED, NEGATIVE, POSITIVE]
    assert out.gt_index[0].item() == 1 and out.gt_index[3].item() == 0


def test_low_quality_matches_give_every_object_its_best_candidate() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    # IoUs 0.5, 0.2, 0.25: nothing reaches 0.7
    candidates = torch.tensor([[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 2.0], [0.0, 0.0, 5.0, 5.0]])
    rules = {"pos_iou_thr": 0.7, "neg_iou_thr": 0.3}
    plain = assign(candidates, gt, **rules, min_pos_iou=0.3, match_low_quality=False)
    assert plain.labels.tolist() == [IGNORED, NEGATIVE, NEGATIVE]
    low = assign(candidates, gt, **rules, min_pos_iou=0.3, match_low_quality=True)
    assert low.labels.tolist() == [POSITIVE, NEGATIVE, NEGATIVE]
    # the best IoU (0.5) is under min_pos_iou 0.6: no rescue
    strict = assign(candidates, gt, **rules, min_pos_iou=0.6, match_low_quality=True)
    assert strict.labels.tolist() == [IGNORED, NEGATIVE, NEGATIVE]


def test_assigner_without_objects_makes_everything_background() -> None:
    out = assign(
        torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 3),
        torch.zeros((0, 4)),
        pos_iou_thr=0.7,
        neg_iou_thr=0.3,
        min_pos_iou=0.3,
        match_low_quality=True,
    )
    assert out.labels.tolist() == [NEGATIVE] * 3


def _labels(pos: int, neg: int, ignored: int = 5) -> torch.Tensor:
    labels = torch.tensor([POSITIVE] * pos + [NEGATIVE] * neg + [IGNORED] * ignored)
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(1))]


@pytest.mark.parametrize(
    ("pos", "neg", "num", "fraction", "want_pos", "want_neg"),
    [
        (10, 100, 16, 0.25, 4, 12),  # capped at int(16 * 0.25) = 4 positives
        (2, 100, 16, 0.25, 2, 14),  # too few positives: negatives fill the batch
        (10, 3, 16, 0.25, 4, 3),  # too few negatives: fewer than num in all
        (10, 100, 16, 1.0, 10, 6),  # fraction 1: every positive that exists
        (10, 100, 7, 0.5, 3, 4),  # int(3.5) = 3
    ],
)
def test_sampler_counts(
    pos: int, neg: int, num: int, fraction: float, want_pos: int, want_neg: int
) -> None:
    labels = _labels(pos, neg)
    torch.manual_seed(0)
    positive, negative = sample(labels, num, fraction)
    assert (positive.numel(), negative.numel()) == (want_pos, want_neg)
    assert (labels[positive] == POSITIVE).all() and (labels[negative] == NEGATIVE).all()
    assert len(set(positive.tolist())) == want_pos and len(set(negative.tolist())) == want_neg


def test_sampler_is_random_but_seeded() -> None:
    labels = _labels(50, 500)
    torch.manual_seed(0)
    first = sample(labels, 32, 0.25)
    torch.manual_seed(0)
    again = sample(labels, 32, 0.25)
    torch.manual_seed(1)
    other = sample(labels, 32, 0.25)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])


# ---- RoI Align ---------------------------------------------------------------------------


def _ramp(size: int) -> torch.Tensor:
    # feature[y, x] = 10 y + x: bilinear interpolation of a linear map is exact
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (10 * y + x).to(torch.float32)[None, None]


def test_roi_align_stride_one_bins_by_hand() -> None:
    # stride 1: cell x is pixels [x, x + 1), its value sits at x + 0.5. The RoI
    # [0.5, 2.5]^2 covers cell coordinates [0, 2]^2: bin (0, 0) samples 0.25 and 0.75 on each
    # axis (mean 0.5), bin (0, 1) samples 1.25 and 1.75 (mean 1.5) ...
    out = roi_align(
        _ramp(4),
        [torch.tensor([[0.5, 0.5, 2.5, 2.5]])],
        output_size=2,
        image_size=(4, 4),
        sampling_ratio=2,
    )
    torch.testing.assert_close(out, torch.tensor([[[[5.5, 6.5], [15.5, 16.5]]]]))


def test_roi_align_maps_image_pixels_through_the_stride() -> None:
    # a 2 x 2 map of an 8 x 8 image (stride 4): cell centres at pixels 2 and 6. The RoI
    # [2, 6]^2 spans cell coordinates [0, 1]^2; one bin averages 0.25 and 0.75 -> 0.5
    features = _ramp(2)
    out = roi_align(
        features,
        [torch.tensor([[2.0, 2.0, 6.0, 6.0]])],
        output_size=1,
        image_size=(8, 8),
        sampling_ratio=2,
    )
    assert out.shape == (1, 1, 1, 1)
    assert out.item() == pytest.approx(10 * 0.5 + 0.5)


def test_roi_align_keeps_image_and_box_order() -> None:
    features = torch.cat((_ramp(4), 100 + _ramp(4), 200 + _ramp(4)))  # image b adds 100 b
    box = torch.tensor([[0.5, 0.5, 2.5, 2.5]])
    # image 0 one box, image 1 none, image 2 the box shifted by one pixel, then the box
    out = roi_align(
        features,
        [box, torch.zeros((0, 4)), torch.cat((box + 1, box))],
        output_size=2,
        image_size=(4, 4),
    )
    expected = torch.tensor([[5.5, 6.5], [15.5, 16.5]])
    # the shift adds 10 (one row) + 1 (one column) to every bin
    torch.testing.assert_close(out[:, 0], torch.stack((expected, expected + 211, expected + 200)))


# ---- loss terms --------------------------------------------------------------------------


def test_term_reductions() -> None:
    term = Term(torch.tensor([2.0, 6.0]), torch.tensor([1.0, 3.0]))
    # mean: (2 + 6) / (1 + 3); sum: 2 / 1 + 6 / 3
    assert term.reduce("mean").item() == pytest.approx(2.0)
    assert term.reduce("sum").item() == pytest.approx(4.0)
    # an image with nothing sampled adds nothing instead of dividing by zero
    assert Term(torch.zeros(1), torch.zeros(1)).reduce("sum").item() == 0.0


def test_objectness_and_l1_terms_by_hand() -> None:
    # logit 0 for an object: -log(1/2); logit log 3 for background: -log(1 - 3/4) = log 4
    term = objectness_term([torch.tensor([0.0, math.log(3.0)])], [torch.tensor([1, 0])])
    assert term.reduce("mean").item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    # one positive with |error| 0.5 + 1 over 4 sampled candidates
    l1 = l1_term([torch.tensor([[0.5, 0.0, 1.0, 0.0]])], [torch.zeros(1, 4)], [4])
    assert l1.reduce("mean").item() == pytest.approx(1.5 / 4)


def test_ce_box_classification_weights_the_background() -> None:
    # two classes + background; RoI 0 is class 0 with uniform logits: -log(1/3);
    # RoI 1 is background with logits (0, 0, log 2): p(bg) = 2/4, loss log 2
    logits = [torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)]])]
    labels = [torch.tensor([0, 2])]
    full = box_classification_term(logits, labels, kind="ce", num_classes=2, bg_weight=1.0)
    assert full.reduce("mean").item() == pytest.approx((math.log(3) + math.log(2)) / 2)
    half = box_classification_term(logits, labels, kind="ce", num_classes=2, bg_weight=0.5)
    assert half.reduce("mean").item() == pytest.approx((math.log(3) + 0.5 * math.log(2)) / 1.5)


def test_focal_box_classification_by_hand_and_against_ce() -> None:
    # two classes, no background logit; all logits 0 so every p = 1/2 and BCE = log 2.
    # RoI 0 (class 0): one positive element, one negative; RoI 1 (background): two negatives
    logits = [torch.zeros(2, 2)]
    labels = [torch.tensor([0, 2])]
    focal = box_classification_term(
        logits, labels, kind="focal", num_classes=2, gamma=2.0, alpha=0.25
    )
    # positive: 0.25 * 0.5**2 * log 2; each of 3 negatives: 0.75 * 0.5**2 * log 2; / 2 RoIs
    expected = (0.25 + 3 * 0.75) * 0.25 * math.log(2) / 2
    assert focal.reduce("mean").item() == pytest.approx(expected)
    # gamma 0, alpha 0.5 is half the plain per-class BCE: 4 elements x log 2 / 2 RoIs / 2
    plain = box_classification_term(
        logits, labels, kind="focal", num_classes=2, gamma=0.0, alpha=0.5
    )
    assert plain.reduce("mean").item() == pytest.approx(math.log(2))
    # a confident right answer costs far less under focal than under ce
    sure = [torch.tensor([[6.0, -6.0]])]
    sure_ce = [torch.tensor([[6.0, -6.0, -6.0]])]
    cls0 = [torch.tensor([0])]
    focal_sure = box_classification_term(sure, cls0, kind="focal", num_classes=2)
    ce_sure = box_classification_term(sure_ce, cls0, kind="ce", num_classes=2)
    assert focal_sure.reduce("mean").item() < ce_sure.reduce("mean").item() / 100

"""The detector task: its torch-free config, the model's forward/backward and evaluation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader

from orchestrator.tasks import get_task
from orchestrator.tasks.detector.config import (
    DetectorLossConfig,
    DetectorTaskConfig,
    prepare_data,
)
from orchestrator.tasks.detector.model import COMPONENTS, FasterRCNN
from orchestrator.tasks.detector.roi_head import ImageDetections
from orchestrator.tasks.detector.task import DetectorTask

TINY_DATA: dict[str, Any] = {
    "num_train": 4,
    "num_val": 4,
    "image_size": 64,
    "num_classes": 3,
    "max_objects": 2,
}
SMALL_MODEL: dict[str, Any] = {"channels": 16, "head_dim": 32}


def _config() -> DetectorTaskConfig:
    return DetectorTaskConfig.model_validate({"data": TINY_DATA, "model": SMALL_MODEL})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    prepare_data(_config(), root)
    return root


def _task(data_root: Path, **loss: Any) -> DetectorTask:
    return DetectorTask(
        _config(), DetectorLossConfig.model_validate(loss), seed=0, data_root=data_root
    )


def _batch(task: DetectorTask, n: int = 2) -> Any:
    train, _ = task.datasets()
    return task.collate([train[i] for i in range(n)])


# ---- config (torch-free) -----------------------------------------------------------------


def test_config_module_does_not_import_torch() -> None:
    code = "import orchestrator.tasks.detector.config, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_points_at_these_classes() -> None:
    spec = get_task("detector")
    assert spec.config_model() is DetectorTaskConfig
    assert spec.loss_model() is DetectorLossConfig
    assert spec.task_class() is DetectorTask
    assert spec.prepare_data() is prepare_data
    assert spec.val_metrics == DetectorTask.val_metrics == ("val/map", "val/map_50")
    assert spec.components == DetectorTask.components == COMPONENTS


def test_defaults_are_mmdetections_faster_rcnn() -> None:
    loss = DetectorLossConfig()
    rpn, rcnn = loss.rpn, loss.rcnn
    assert (rpn.sampler.num, rpn.sampler.pos_fraction) == (256, 0.5)
    assert (rpn.assigner.pos_iou_thr, rpn.assigner.neg_iou_thr) == (0.7, 0.3)
    assert (rpn.assigner.min_pos_iou, rpn.assigner.match_low_quality) == (0.3, True)
    assert (rcnn.sampler.num, rcnn.sampler.pos_fraction) == (512, 0.25)
    assert (rcnn.assigner.pos_iou_thr, rcnn.assigner.neg_iou_thr) == (0.5, 0.5)
    assert (loss.cls, loss.reduction, loss.ce.bg_weight) == ("ce", "mean", 1.0)
    assert (loss.focal.gamma, loss.focal.alpha) == (2.0, 0.25)
    assert loss.weight.model_dump() == {"cls": 1.0, "bbox": 1.0, "rpn_cls": 1.0, "rpn_bbox": 1.0}


def test_a_partial_section_keeps_the_other_defaults_of_its_stage() -> None:
    loss = DetectorLossConfig.model_validate(
        {"rpn": {"sampler": {"num": 128}}, "rcnn": {"assigner": {"pos_iou_thr": 0.6}}}
    )
    assert (loss.rpn.sampler.num, loss.rpn.sampler.pos_fraction) == (128, 0.5)
    assert loss.rpn.assigner.pos_iou_thr == 0.7
    assert (loss.rcnn.assigner.pos_iou_thr, loss.rcnn.assigner.neg_iou_thr) == (0.6, 0.5)
    assert loss.rcnn.sampler.num == 512


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"rpn": {"sampler": {"pos_fraction": 0.0}}}, r"pos_fraction must be in \(0, 1\], got 0"),
        ({"rcnn": {"sampler": {"pos_fraction": 1.5}}}, r"in \(0, 1\], got 1.5"),
        ({"rcnn": {"sampler": {"num": 0}}}, "greater than or equal to 1"),
        ({"rpn": {"assigner": {"neg_iou_thr": 0.8}}}, "neg_iou_thr must be <= pos_iou_thr"),
        ({"rcnn": {"assigner": {"min_pos_iou": 0.9}}}, "min_pos_iou must be <= pos_iou_thr"),
        ({"cls": "softmax"}, "'ce' or 'focal'"),
        ({"reduction": "none"}, "'mean' or 'sum'"),
        ({"focal": {"alpha": 1.0}}, "less than 1"),
        ({"ce": {"bg_weight": 0.0}}, "greater than 0"),
        ({"weight": {"rpn_cls": -1.0}}, "greater than or equal to 0"),
        ({"weight": {"giou": 1.0}}, "Extra inputs are not permitted"),
    ],
)
def test_loss_config_rejects_with_a_clear_message(loss: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DetectorLossConfig.model_validate(loss)


def test_task_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="anchor scales must be > 0"):
        DetectorTaskConfig.model_validate({"model": {"anchor": {"scales": [2.0, -1.0]}}})
    with pytest.raises(ValidationError, match="multiple of 32"):
        DetectorTaskConfig.model_validate({"data": {"image_size": 100}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        DetectorTaskConfig.model_validate({"model": {"preset": "tiny"}})
    assert DetectorTaskConfig.model_validate({"data": {"num_train": 8}}).data.kind == "synthetic"


# ---- model, loss, evaluation -------------------------------------------------------------


@pytest.mark.parametrize("cls", ["ce", "focal"])
def test_loss_is_a_weighted_sum_of_four_terms_and_trains_every_part(
    data_root: Path, cls: str
) -> None:
    weights = {"cls": 2.0, "bbox": 3.0, "rpn_cls": 0.5, "rpn_bbox": 4.0}
    task = _task(data_root, cls=cls, weight=weights)
    model = task.build_model()
    assert isinstance(model, FasterRCNN)
    model.eval()  # loss() must switch to training mode itself
    out = task.loss(model, _batch(task))
    assert model.training
    assert set(out.raw) == set(out.weighted) == set(COMPONENTS)
    assert torch.isfinite(out.total) and out.reduction == "mean"
    for name, weight in weights.items():
        assert out.raw[name].item() > 0, name
        assert out.weighted[name].item() == pytest.approx(weight * out.raw[name].item())
    assert out.total.item() == pytest.approx(sum(v.item() for v in out.weighted.values()))
    assert not any(v.requires_grad for v in (*out.raw.values(), *out.weighted.values()))
    # loss.weighting balance | target_share recombine the differentiable terms
    assert out.weights == weights and set(out.terms) == set(COMPONENTS)
    assert all(out.terms[n].requires_grad for n in COMPONENTS)
    out.total.backward()
    for part in (model.backbone, model.rpn, model.box_head):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(bool(g.abs().sum() > 0) for g in grads if g is not None) == len(grads)


def test_sum_reduction_equals_mean_for_one_image_and_is_reported(data_root: Path) -> None:
    mean, summed = _task(data_root), _task(data_root, reduction="sum")
    model = mean.build_model()
    one = _batch(mean, n=1)
    torch.manual_seed(0)
    a = mean.loss(model, one)
    torch.manual_seed(0)  # the same sampled anchors and RoIs
    b = summed.loss(model, one)
    assert b.reduction == "sum"
    for name in COMPONENTS:
        assert b.raw[name].item() == pytest.approx(a.raw[name].item(), rel=1e-5)


def test_ce_has_a_background_logit_and_focal_does_not(data_root: Path) -> None:
    ce, focal = _task(data_root).build_model(), _task(data_root, cls="focal").build_model()
    assert isinstance(ce, FasterRCNN) and isinstance(focal, FasterRCNN)
    assert ce.box_head.cls.out_features == 4 and focal.box_head.cls.out_features == 3
    assert ce.box_head.reg.out_features == focal.box_head.reg.out_features == 12


def test_build_model_is_seeded(data_root: Path) -> None:
    a = _task(data_root).build_model().state_dict()
    b = _task(data_root).build_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_inference_returns_detections_inside_the_image(data_root: Path) -> None:
    task = _task(data_root)
    model = task.build_model().eval()
    batch = _batch(task)
    with torch.no_grad():
        found = model(batch["pixel_values"])
    assert isinstance(found, list) and len(found) == 2
    for det in found:
        assert isinstance(det, ImageDetections)
        n = det.boxes.shape[0]
        assert det.boxes.shape == (n, 4) and det.scores.shape == det.labels.shape == (n,)
        assert n <= task.config.model.test.max_per_img
        assert bool((det.scores > task.config.model.test.score_thr).all())
        assert bool((det.boxes >= 0).all() and (det.boxes <= 64).all())
        assert bool((det.labels >= 0).all() and (det.labels < 3).all())


def test_evaluate_returns_map_and_restores_mode(data_root: Path) -> None:
    task = _task(data_root)
    model = task.build_model()
    _, val = task.datasets()
    loader = DataLoader(val, batch_size=2, collate_fn=task.collate)
    model.train()
    metrics = task.evaluate(model, loader)
    assert model.training
    assert set(metrics) == set(DetectorTask.val_metrics)
    assert 0.0 <= metrics["val/map"] <= metrics["val/map_50"] <= 1.0

"""The rtdetr task end to end on a tiny synthetic set, plus its torch-free config."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader
from transformers import RTDetrForObjectDetection

from orchestrator.tasks import get_task
from orchestrator.tasks.coco.dataset import CocoDetection
from orchestrator.tasks.rtdetr.config import (
    RTDetrLossConfig,
    RTDetrModelConfig,
    RTDetrTaskConfig,
    prepare_data,
)
from orchestrator.tasks.rtdetr.task import RTDetrTask

TINY_DATA: dict[str, Any] = {
    "num_train": 4,
    "num_val": 4,
    "image_size": 64,
    "num_classes": 3,
    "max_objects": 2,
}


def _config(**model: Any) -> RTDetrTaskConfig:
    return RTDetrTaskConfig.model_validate(
        {"data": TINY_DATA, "model": {"num_queries": 10, **model}}
    )


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    prepare_data(_config(), root)
    return root


def _task(data_root: Path, **loss: Any) -> RTDetrTask:
    return RTDetrTask(
        _config(), RTDetrLossConfig.model_validate(loss), seed=0, data_root=data_root
    )


def _batch(task: RTDetrTask, n: int = 2) -> Any:
    train, _ = task.datasets()
    return task.collate([train[i] for i in range(n)])


# ---- config (torch-free) ---------------------------------------------------------------


def test_config_module_does_not_import_torch() -> None:
    code = "import orchestrator.tasks.rtdetr.config, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_points_at_these_classes() -> None:
    spec = get_task("rtdetr")
    assert spec.config_model() is RTDetrTaskConfig
    assert spec.loss_model() is RTDetrLossConfig
    assert spec.task_class() is RTDetrTask
    assert spec.prepare_data() is prepare_data
    assert spec.val_metrics == RTDetrTask.val_metrics
    assert spec.components == RTDetrTask.components


def test_config_defaults() -> None:
    config = RTDetrTaskConfig()
    assert config.model.preset == "tiny" and config.model.checkpoint is None
    assert config.data.kind == "synthetic" and config.data.image_size == 128
    loss = RTDetrLossConfig()
    assert (loss.cls, loss.aux, loss.focal.gamma, loss.focal.alpha) == ("vfl", True, 2.0, 0.75)
    assert (loss.weight.cls, loss.weight.bbox, loss.weight.giou) == (1.0, 5.0, 2.0)


@pytest.mark.parametrize(
    ("model", "loss"),
    [
        ({"bogus": 1}, {}),
        ({}, {"bogus": 1}),
        ({}, {"focal": {"gamma": -0.5}}),
        ({}, {"focal": {"alpha": 1.0}}),
        ({}, {"ce": {"bg_weight": 0.0}}),
        ({}, {"cls": "softmax"}),
        ({"preset": "tiny", "checkpoint": "/some/dir"}, {}),
        ({"preset": None}, {}),
    ],
)
def test_config_rejects(model: dict[str, Any], loss: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RTDetrTaskConfig.model_validate({"model": model})
        RTDetrLossConfig.model_validate(loss)


def test_config_rejects_unknown_task_key_and_bad_image_size() -> None:
    with pytest.raises(ValidationError):
        RTDetrTaskConfig.model_validate({"epochs": 3})
    with pytest.raises(ValidationError, match="multiple of 32"):
        RTDetrTaskConfig.model_validate({"data": {"image_size": 100}})
    # a 32x32 image has 4*4 + 2*2 + 1*1 = 21 anchor cells, fewer than 50 queries
    with pytest.raises(ValidationError, match="21 anchors"):
        RTDetrTaskConfig.model_validate({"data": {"image_size": 32}})
    assert (
        RTDetrTaskConfig.model_validate(
            {"data": {"image_size": 32}, "model": {"num_queries": 21}}
        ).model.num_queries
        == 21
    )


def test_checkpoint_alone_means_no_preset() -> None:
    model = RTDetrModelConfig.model_validate({"checkpoint": "/some/dir"})
    assert model.preset is None and model.checkpoint == "/some/dir"


def test_coco_data_section_and_missing_paths(tmp_path: Path) -> None:
    present = tmp_path / "train.json"
    present.write_text("{}")
    config = RTDetrTaskConfig.model_validate(
        {
            "data": {
                "kind": "coco",
                "train_images": str(tmp_path),
                "train_annotations": str(present),
                "val_images": str(tmp_path),
                "val_annotations": str(tmp_path / "missing.json"),
            }
        }
    )
    assert config.data.image_size == 320
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        prepare_data(config, tmp_path)


# ---- model, loss, evaluation -----------------------------------------------------------


def test_tiny_model_size_and_heads(data_root: Path) -> None:
    model = _task(data_root).build_model()
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    batch = _batch(_task(data_root))
    out = model(pixel_values=batch["pixel_values"])
    assert out.logits.shape == (2, 10, 3)
    assert out.pred_boxes.shape == (2, 10, 4)

    ce_model = _task(data_root, cls="ce").build_model()
    assert ce_model(pixel_values=batch["pixel_values"]).logits.shape == (2, 10, 4)


def test_build_model_is_seeded(data_root: Path) -> None:
    a = _task(data_root).build_model().state_dict()
    b = _task(data_root).build_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cls", ["vfl", "focal", "bce", "ce"])
def test_loss_is_finite_weighted_sum_and_backpropagates(data_root: Path, cls: str) -> None:
    task = _task(data_root, cls=cls)
    model = task.build_model()
    model.eval()  # loss() must switch to training mode itself
    out = task.loss(model, _batch(task))
    assert model.training
    assert set(out.raw) == set(out.weighted) == {"cls", "bbox", "giou"}
    assert torch.isfinite(out.total)
    assert out.total.item() == pytest.approx(sum(v.item() for v in out.weighted.values()))
    assert out.weighted["bbox"].item() == pytest.approx(5.0 * out.raw["bbox"].item())
    assert not any(v.requires_grad for v in (*out.raw.values(), *out.weighted.values()))
    out.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2


def test_aux_losses_add_to_each_component(data_root: Path) -> None:
    with_aux, without = _task(data_root, aux=True), _task(data_root, aux=False)
    model = with_aux.build_model()
    batch = _batch(with_aux)
    torch.manual_seed(0)
    raw_aux = with_aux.loss(model, batch).raw
    torch.manual_seed(0)
    raw_final = without.loss(model, batch).raw
    for name in ("cls", "bbox", "giou"):
        # aux = final layer + intermediate layer + encoder proposals, all non-negative
        assert raw_aux[name].item() > raw_final[name].item() > 0


def test_evaluate_returns_metrics_and_restores_mode(data_root: Path) -> None:
    task = _task(data_root)
    model = task.build_model()
    _, val = task.datasets()
    loader = DataLoader(val, batch_size=2, collate_fn=task.collate)
    model.train()
    metrics = task.evaluate(model, loader)
    assert model.training
    assert set(metrics) == set(RTDetrTask.val_metrics)
    assert 0.0 <= metrics["val/map"] <= 1.0 and 0.0 <= metrics["val/map_50"] <= 1.0
    assert math.isfinite(metrics["val/loss_raw"]) and metrics["val/loss_raw"] > 0
    model.eval()
    task.evaluate(model, loader)
    assert not model.training

    ce = _task(data_root, cls="ce")
    ce_metrics = ce.evaluate(ce.build_model(), loader)
    assert 0.0 <= ce_metrics["val/map"] <= 1.0


def test_checkpoint_round_trip(data_root: Path, tmp_path: Path) -> None:
    source = _task(data_root).build_model()
    assert isinstance(source, RTDetrForObjectDetection)
    source.save_pretrained(tmp_path / "ckpt")
    config = RTDetrTaskConfig.model_validate(
        {"data": TINY_DATA, "model": {"checkpoint": str(tmp_path / "ckpt"), "num_queries": 10}}
    )
    task = RTDetrTask(config, RTDetrLossConfig(), seed=1, data_root=data_root)
    loaded = task.build_model()
    ref, got = source.state_dict(), loaded.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)

    # a ce head needs one more logit: the class heads are re-initialised at the new size
    ce = RTDetrTask(config, RTDetrLossConfig(cls="ce"), seed=1, data_root=data_root)
    batch = _batch(task)
    assert ce.build_model()(pixel_values=batch["pixel_values"]).logits.shape[-1] == 4


def test_checkpoint_without_config_json_is_a_clear_error(data_root: Path, tmp_path: Path) -> None:
    config = RTDetrTaskConfig.model_validate(
        {"data": TINY_DATA, "model": {"checkpoint": str(tmp_path)}}
    )
    task = RTDetrTask(config, RTDetrLossConfig(), seed=0, data_root=data_root)
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        task.build_model()


def test_datasets_find_or_generate_the_synthetic_folder(tmp_path: Path) -> None:
    task = RTDetrTask(_config(), RTDetrLossConfig(), seed=0, data_root=tmp_path)
    train, val = task.datasets()  # prepare_data was never called for tmp_path
    assert isinstance(train, CocoDetection) and isinstance(val, CocoDetection)
    assert (len(train), len(val)) == (4, 4)
    pixels, target = train[0]
    assert pixels.shape == (3, 64, 64)
    assert set(target) == {"image_id", "class_labels", "boxes", "orig_size"}

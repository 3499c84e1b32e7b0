"""A toy classification loss registered from this module only (docs/extending.md) is
accepted by the detector's ``loss.cls``, shapes its box head and trains a real tiny
Faster R-CNN step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch
from pydantic import ValidationError

from orchestrator.config.classification import CLASSIFICATION_LOSSES, ClassificationLoss
from orchestrator.tasks.detector.config import DetectorLossConfig, DetectorTaskConfig
from orchestrator.tasks.detector.config import prepare_data as prepare_detector_data
from orchestrator.tasks.detector.model import FasterRCNN
from orchestrator.tasks.detector.task import DetectorTask
from orchestrator.tasks.rtdetr.config import RTDetrLossConfig


class Brier(ClassificationLoss):
    """Squared error of each class's sigmoid probability against its one-hot target."""

    kind: Literal["brier"] = "brier"
    tasks: ClassVar[tuple[str, ...]] = ("detector",)

    def loss(
        self,
        logits: torch.Tensor,
        classes: torch.Tensor,
        *,
        num_boxes: float,
        quality: torch.Tensor | None = None,
    ) -> torch.Tensor:
        num_classes = logits.shape[-1]
        one_hot = torch.nn.functional.one_hot(classes, num_classes + 1)[..., :num_classes]
        return ((logits.sigmoid() - one_hot) ** 2).sum() / max(num_boxes, 1.0)


@pytest.fixture
def brier() -> Iterator[None]:
    CLASSIFICATION_LOSSES.register(Brier)
    yield
    CLASSIFICATION_LOSSES.remove("brier")


DATA: dict[str, Any] = {
    "num_train": 4,
    "num_val": 2,
    "image_size": 64,
    "num_classes": 3,
    "max_objects": 2,
}


def test_the_task_s_cls_accepts_it_where_it_says_it_serves(brier: None) -> None:
    loss = DetectorLossConfig.model_validate({"cls": "brier"})
    assert isinstance(loss.classification(), Brier)
    with pytest.raises(ValidationError, match=r"'brier', 'ce' or 'focal'.*input_value='bri'"):
        DetectorLossConfig.model_validate({"cls": "bri"})
    # rtdetr is not in Brier.tasks
    with pytest.raises(ValidationError, match=r"should be 'bce', 'ce', 'focal' or 'vfl'"):
        RTDetrLossConfig.model_validate({"cls": "brier"})


def test_unregistered_it_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"should be 'ce' or 'focal'"):
        DetectorLossConfig.model_validate({"cls": "brier"})


def test_by_hand_and_the_default_normaliser(brier: None) -> None:
    # all logits 0: p = 1/2, every element's squared error 1/4; RoI 0 is class 0, RoI 1
    # background: 4 elements = 1.0; the detector normalises by the 2 sampled RoIs
    logits, classes = torch.zeros(2, 2), torch.tensor([0, 2])
    assert Brier().loss(logits, classes, num_boxes=1.0).item() == pytest.approx(1.0)
    total, count = Brier().sum_and_count(logits, classes)
    assert (total.item(), count) == (pytest.approx(1.0), 2.0)


def test_it_trains_a_real_detector_step(brier: None, tmp_path: Path) -> None:
    config = DetectorTaskConfig.model_validate(
        {"data": DATA, "model": {"channels": 16, "head_dim": 32}}
    )
    prepare_detector_data(config, tmp_path)
    loss = DetectorLossConfig.model_validate({"cls": "brier", "weight": {"cls": 2.0}})
    task = DetectorTask(config, loss, seed=0, data_root=tmp_path)
    model = task.build_model()
    assert isinstance(model, FasterRCNN)
    # a sigmoid head: no background logit, and the focal prior on its bias
    assert model.box_head.cls.out_features == 3
    assert model.box_head.cls.bias.detach().sigmoid().allclose(torch.tensor(0.01))
    train, _ = task.datasets()
    batch = task.collate([train[0], train[1]])
    out = task.loss(model, batch)
    # every sampled RoI scores about 0.01 per class at the start: background RoIs cost
    # ~3 x 0.01**2, a positive ~0.99**2; the mean over sampled RoIs is in between
    assert 3e-4 < out.raw["cls"].item() < 0.99**2
    assert out.weighted["cls"].item() == pytest.approx(2.0 * out.raw["cls"].item())
    before = model.box_head.cls.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out.total.backward()
    assert model.box_head.cls.weight.grad is not None
    assert model.box_head.cls.weight.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(before, model.box_head.cls.weight)
    # evaluation scores detections with the loss's probabilities (sigmoid)
    metrics = task.evaluate(
        model,
        torch.utils.data.DataLoader(task.datasets()[1], batch_size=2, collate_fn=task.collate),
    )
    assert set(metrics) == {"val/map", "val/map_50"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())

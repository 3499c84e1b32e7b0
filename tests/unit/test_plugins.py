"""A toy plugin of each in-trial extension kind, registered from this module only, runs a real
trial end to end (docs/extending.md): a divergence rule and a task. Schedulers and samplers:
tests/integration/test_plugins_sweep.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch
from pydantic import Field
from torch.utils.data import DataLoader, TensorDataset

from orchestrator.config import load_sweep
from orchestrator.config.divergence import RULES, RuleConfig, register_rule
from orchestrator.config.task import TASKS, LossConfig, TaskConfig, TaskSpec, register_task
from orchestrator.divergence.base import DivergenceDetector, History, StopReason
from orchestrator.errors import ConfigErrors
from orchestrator.search_space import SearchSpace
from orchestrator.tasks.base import LossOutput
from orchestrator.training.loop import run_trial
from orchestrator.training.spec import TrialSpec


class LossAboveDetector(DivergenceDetector):
    """Fires at the first report whose ``train/loss`` is above ``limit``."""

    name = "loss_above"

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def check(self, history: History) -> StopReason | None:
        for i, report in enumerate(history):
            if report.get("train/loss", 0.0) > self.limit:
                return StopReason("loss_above", f"train/loss above {self.limit}", i)
        return None


class LossAboveRule(RuleConfig):
    name: ClassVar[str] = "loss_above"
    detector: ClassVar[type[DivergenceDetector]] = LossAboveDetector

    enabled: bool = False
    limit: float = Field(1e9, ge=0)


class ToyTaskConfig(TaskConfig):
    kind: Literal["toy"] = "toy"
    num_train: int = Field(32, ge=1)


class ToyLossConfig(LossConfig):
    weight: float = Field(1.0, gt=0)


class ToyTask:
    """Fit ``y = 3x`` with one weight; the validation metric is the weight's distance to 3."""

    val_metrics: ClassVar[tuple[str, ...]] = ("val/gap",)
    components: ClassVar[tuple[str, ...]] = ("sq",)

    def __init__(self, config: Any, loss: Any, *, seed: int, data_root: Path) -> None:
        self.config, self.loss_config = config, loss
        self.x = torch.linspace(-1, 1, config.num_train).unsqueeze(1)

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Linear(1, 1, bias=False)

    def datasets(self) -> tuple[Any, Any]:
        data = TensorDataset(self.x, 3 * self.x)
        return data, data

    def collate(self, samples: list[Any]) -> Any:
        return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        x, y = batch
        sq = ((model(x) - y) ** 2).mean()
        return LossOutput.weighted_sum({"sq": sq}, {"sq": self.loss_config.weight})

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        return {"val/gap": abs(float(model.weight.item()) - 3.0)}


@pytest.fixture
def plugins() -> Iterator[None]:
    register_rule(LossAboveRule)
    register_task(
        "toy",
        TaskSpec(
            config=ToyTaskConfig,
            loss=ToyLossConfig,
            impl=ToyTask,
            prepare=lambda config, root: None,
            val_metrics=ToyTask.val_metrics,
            components=ToyTask.components,
        ),
    )
    yield
    RULES.remove("loss_above")
    TASKS.remove("toy")


def trial(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    config = load_sweep(path)
    params = SearchSpace(config).derived({})
    reports: list[dict[str, Any]] = []
    spec = TrialSpec(config.model_dump(by_alias=True, mode="json"), params, str(tmp_path))
    run_trial(spec, reports.append)
    return reports


TOY = """\
name: toy
task: {kind: toy, num_train: 32}
optim: {name: sgd, lr: 0.5, momentum: 0}
batch: {effective: 8, micro: 8}
train: {epochs: 3, grad_clip: null}
objective: {metric: val/gap, mode: min}
"""


def test_a_registered_task_is_validated_trained_and_evaluated(tmp_path, plugins):
    reports = trial(tmp_path, TOY)
    assert [r["orch.epoch"] for r in reports] == [1, 2, 3]
    # 32 samples / effective 8 = 4 SGD steps per epoch towards w = 3
    assert reports[-1]["val/gap"] < reports[0]["val/gap"] < 3.0
    assert reports[0]["train/raw_sq"] == pytest.approx(reports[0]["train/loss_sq"])


def test_a_task_plugin_s_keys_and_metrics_are_checked_like_a_built_in(tmp_path, plugins):
    path = tmp_path / "bad.yaml"
    path.write_text(TOY.replace("num_train: 32", "num_trian: 32"))
    with pytest.raises(ConfigErrors, match=r"task\.num_trian: unknown key \(did you mean"):
        load_sweep(path)
    path.write_text(TOY.replace("val/gap", "val/gp"))
    with pytest.raises(ConfigErrors, match=r"not a metric this task reports .*'val/gap'"):
        load_sweep(path)


def test_a_registered_rule_is_configured_from_the_file_and_stops_the_trial(tmp_path, plugins):
    # a limit of 0 fires at the first report (a squared error is > 0 before it has converged)
    text = TOY + "stopping:\n  divergence:\n    loss_above: {enabled: true, limit: 0}\n"
    reports = trial(tmp_path, text)
    assert len(reports) == 1
    assert reports[0]["orch.stop_reason"] == "loss_above"
    assert reports[0]["orch.stop_detail"] == "train/loss above 0.0"


def test_a_registered_rule_s_keys_are_listed_in_errors(tmp_path, plugins):
    path = tmp_path / "bad.yaml"
    path.write_text(TOY + "stopping:\n  divergence:\n    loss_above: {limt: 0}\n")
    with pytest.raises(
        ConfigErrors, match=r"loss_above\.limt: unknown key .*allowed: enabled, limit"
    ):
        load_sweep(path)

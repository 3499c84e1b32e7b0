"""The ``line`` task: a one-parameter-pair linear model on generated points."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from orch_plugin_line.config import LineLossConfig, LineTaskConfig
from orchestrator.tasks.base import LossOutput


class LineTask:
    val_metrics: ClassVar[tuple[str, ...]] = ("val/mse",)
    components: ClassVar[tuple[str, ...]] = ("mse",)

    def __init__(
        self, config: LineTaskConfig, loss: LineLossConfig, *, seed: int, data_root: Path
    ) -> None:
        self.config, self.weights, self.seed = config, loss.weight, seed

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return torch.nn.Linear(1, 1)

    def datasets(self) -> tuple[Dataset[Any], Dataset[Any]]:
        c = self.config
        g = torch.Generator().manual_seed(0)
        x = torch.rand(c.num_train + c.num_val, 1, generator=g)
        y = c.slope * x + 1 + 0.01 * torch.randn(x.shape, generator=g)
        return TensorDataset(x[: c.num_train], y[: c.num_train]), TensorDataset(
            x[c.num_train :], y[c.num_train :]
        )

    def collate(self, samples: list[Any]) -> Any:
        xs, ys = zip(*samples, strict=True)
        return torch.stack(xs), torch.stack(ys)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        x, y = batch
        return LossOutput.weighted_sum(
            {"mse": ((model(x) - y) ** 2).mean()}, {"mse": self.weights.mse}
        )

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        with torch.no_grad():
            errors = [((model(x) - y) ** 2).sum() for x, y in loader]
            count = sum(len(y) for _, y in loader)
        return {"val/mse": float(sum(errors)) / count}

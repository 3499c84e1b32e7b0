"""The ``regression`` task implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from orchestrator.tasks.base import LossOutput
from orchestrator.tasks.regression.config import (
    COMPONENTS,
    VAL_METRICS,
    RegressionLossConfig,
    RegressionTaskConfig,
)


class RegressionTask:
    """A 2-layer MLP fitting a noisy linear target; seconds per trial on a CPU."""

    val_metrics: ClassVar[tuple[str, ...]] = VAL_METRICS
    components: ClassVar[tuple[str, ...]] = COMPONENTS

    def __init__(
        self,
        config: RegressionTaskConfig,
        loss: RegressionLossConfig,
        *,
        seed: int,
        data_root: Path,
    ) -> None:
        self.config = config
        self.weights = loss.weight
        self.reduction = loss.reduction
        self.seed = seed
        self._calls = 0

    def build_model(self) -> torch.nn.Module:
        self._inject_fault()
        torch.manual_seed(self.seed)
        c = self.config
        return torch.nn.Sequential(
            torch.nn.Linear(c.features, c.hidden), torch.nn.Tanh(), torch.nn.Linear(c.hidden, 1)
        )

    def _inject_fault(self) -> None:
        fault = self.config.fault
        if fault is None or fault.kind == "nan":
            return
        log = Path(fault.log)
        fired = len(log.read_text().splitlines()) if log.exists() else 0
        if fault.kind == "infrastructure" and fired >= fault.times:
            return
        with log.open("a") as f:
            f.write(f"{fault.kind}\n")
        if fault.kind == "deterministic":
            raise ValueError("injected fault: a bug in the trial (fault.kind=deterministic)")
        raise MemoryError("injected fault: the node ran out of memory (fault.kind=infrastructure)")

    def _maybe_nan(self, loss: torch.Tensor) -> torch.Tensor:
        fault = self.config.fault
        if fault is None or fault.kind != "nan" or not torch.is_grad_enabled():
            return loss
        self._calls += 1
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if rank != fault.rank or self._calls < fault.at_step:
            return loss
        if self._calls == fault.at_step:
            with Path(fault.log).open("a") as f:
                f.write(f"nan rank {rank} micro-batch {self._calls}\n")
        return loss * float("nan")

    def datasets(self) -> tuple[Dataset[Any], Dataset[Any]]:
        c = self.config
        g = torch.Generator().manual_seed(c.data_seed)
        w = torch.randn(c.features, 1, generator=g)
        x = torch.randn(c.num_train + c.num_val, c.features, generator=g)
        y = x @ w + c.noise * torch.randn(x.shape[0], 1, generator=g)
        return (
            TensorDataset(x[: c.num_train], y[: c.num_train]),
            TensorDataset(x[c.num_train :], y[c.num_train :]),
        )

    def collate(self, samples: list[Any]) -> Any:
        xs, ys = zip(*samples, strict=True)
        return torch.stack(xs), torch.stack(ys)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        x, y = batch
        error = model(x) - y
        reduce = torch.sum if self.reduction == "sum" else torch.mean
        # the fault goes into a term, not the total, so it fires under every loss.weighting
        raw = {"mse": self._maybe_nan(reduce(error**2)), "l1": reduce(error.abs())}
        weights = {"mse": self.weights.mse, "l1": self.weights.l1}
        return LossOutput.weighted_sum(raw, weights, self.reduction)

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for x, y in loader:
                total += float(((model(x) - y) ** 2).sum())
                count += len(y)
        model.train(was_training)
        return {"val/mse": total / max(count, 1)}

"""The Task extension point: what a trial needs to know about a model family.

A task owns its model, data, criterion and evaluation; the training loop
(:mod:`orchestrator.training`) owns optimisation, accumulation and reporting.
Task *config* models live in torch-free modules so ``orchestrate validate`` stays fast;
the task *implementation* is imported only inside a trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from orchestrator.config.task import DataTaskConfig, LossConfig, TaskConfig

__all__ = ["DataTaskConfig", "LossConfig", "LossOutput", "Task", "TaskConfig"]

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, Dataset


@dataclass
class LossOutput:
    """One criterion evaluation.

    ``total`` is the differentiable weighted sum that is back-propagated;
    ``raw`` holds each component unweighted and ``weighted`` each component times its
    weight (both detached), keyed by component name (``cls``, ``bbox``, ``giou`` ...).
    ``reduction`` says how ``total`` reduces over the micro-batch's samples: ``mean``, or
    ``sum`` (RAM's ASL), which the loop rescales so the step sums over the effective batch.
    """

    total: torch.Tensor
    raw: dict[str, torch.Tensor] = field(default_factory=dict)
    weighted: dict[str, torch.Tensor] = field(default_factory=dict)
    reduction: Literal["mean", "sum"] = "mean"
    #: each component unweighted and still differentiable, so the loop can recombine them
    #: under ``loss.weighting: balance | target_share``; empty = the task does not support it
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    #: the configured weight of each component (what ``fixed`` weighting multiplies by)
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def weighted_sum(
        cls,
        terms: dict[str, torch.Tensor],
        weights: dict[str, float],
        reduction: Literal["mean", "sum"] = "mean",
    ) -> LossOutput:
        """``total = sum(weights[c] * terms[c])`` with every field filled in: the one way a
        task should build its output, so every weighting mode works for it."""
        weighted = {name: weights[name] * value for name, value in terms.items()}
        total: Any = sum(weighted.values())
        return cls(
            total=total,
            raw={name: value.detach() for name, value in terms.items()},
            weighted={name: value.detach() for name, value in weighted.items()},
            reduction=reduction,
            terms=dict(terms),
            weights=dict(weights),
        )


class Task(Protocol):
    """A model family that can be trained and evaluated by the trial loop.

    Implementations are constructed in every training process as
    ``TaskClass(config, loss, seed=seed, data_root=data_root)``.
    """

    #: validation metrics :meth:`evaluate` returns; objectives must be among these
    #: (or the loop's ``train/*`` metrics).
    val_metrics: ClassVar[tuple[str, ...]]
    #: loss component names, used for ``train/loss_<name>`` and ``train/raw_<name>``.
    components: ClassVar[tuple[str, ...]]
    # Optional: ``mlflow_format: ClassVar[str] = "pickle"`` for a model torch.export cannot
    # trace (data-dependent control flow); the final MLflow model is then pickled at once
    # instead of after a failed ``pt2`` export (training/export.py). Default: ``pt2``.

    def __init__(self, config: Any, loss: Any, *, seed: int, data_root: Path) -> None: ...

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised (or locally loaded) model, seeded."""
        ...

    def datasets(self) -> tuple[Dataset[Any], Dataset[Any]]:
        """The (train, val) datasets; both must support ``len()``."""
        ...

    def collate(self, samples: list[Any]) -> Any:
        """Turn a list of dataset items into one batch (tensors, or lists of tensors)."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> LossOutput:
        """Forward ``batch`` through ``model`` in training mode and apply the criterion."""
        ...

    def evaluate(self, model: torch.nn.Module, loader: DataLoader[Any]) -> dict[str, float]:
        """Validation metrics (keys from :attr:`val_metrics`) on the whole ``loader``."""
        ...

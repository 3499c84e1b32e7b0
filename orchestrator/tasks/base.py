"""The Task extension point: what a trial needs to know about a model family.

A task owns its model, data, criterion and evaluation; the training loop
(:mod:`orchestrator.training`) owns optimisation, accumulation and reporting.
Task *config* models live in torch-free modules so ``orchestrate validate`` stays fast;
the task *implementation* is imported only inside a trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, Dataset


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class TaskConfig(StrictModel):
    """Common part of every ``task:`` section; each task subclasses it."""

    kind: str

    def reported_metrics(self) -> list[str] | None:
        """Metric names this config makes its trials report (``command`` maps its own);
        None: the registry's ``val_metrics`` plus the loop's ``train/*`` metrics."""
        return None

    def sweep_problems(self, sweep: Any) -> list[tuple[tuple[str, ...], str, Any]]:
        """``(path, rule, value)`` of problems visible only with the whole sweep; none here."""
        return []

    def trial_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The MLflow params of a trial's run, from all of its hyperparameters (dotted keys,
        fixed and sampled): only what the trial uses. The built-in loop uses them all."""
        return values


class DataTaskConfig(TaskConfig):
    """A task whose ``data:`` section is a union tagged by ``kind`` (generated or on disk)."""

    @model_validator(mode="before")
    @classmethod
    def _data_kind_defaults_to_synthetic(cls, data: Any) -> Any:
        # the discriminated union needs its tag; let ``data: {num_train: 64}`` mean synthetic
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            section = data["data"]
            if "kind" not in section:
                return {**data, "data": {"kind": "synthetic", **section}}
        return data


class LossConfig(StrictModel):
    """Common part of every ``loss:`` section; each task subclasses it.

    The fields here say how the trial loop combines the task's loss terms, the same for
    every task (docs/loss-weighting.md): ``fixed`` uses the task's own weights; ``balance``
    rescales each term to the magnitude of ``balance_reference`` by a detached ratio (RAM),
    times its weight; ``target_share`` measures each term's magnitude on a few micro-batches
    at the trial's start and sets weights so each term is ``share`` of the total. Which
    names are components is known only with the task, so those checks are in
    :mod:`orchestrator.search_space.loss_weighting`.
    """

    weighting: Literal["fixed", "balance", "target_share"] = "fixed"
    #: ``balance``: the component every other term is rescaled to; null = the task's first
    balance_reference: str | None = None
    #: ``target_share``: each component's share of the total, normalised to sum 1; a dict
    #: (not a model) so ``space`` can search ``loss.share.<component>`` for any task
    share: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    #: ``target_share``: micro-batches per rank the magnitudes are averaged over
    calibration_batches: int = Field(4, ge=1, le=1000)

    @field_validator("share")
    @classmethod
    def _some_share(cls, value: dict[str, float]) -> dict[str, float]:
        if value and sum(value.values()) <= 0:
            raise ValueError(f"shares must not all be 0, got {value}")
        return value


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


class TaskEntry(Protocol):
    """What the registry knows about a task without importing torch."""

    config_model: type[TaskConfig]
    loss_model: type[LossConfig]

    def prepare_data(self, config: TaskConfig, data_root: Path) -> None:
        """Write/check the task's data once per sweep, in the driver, before trials start."""
        ...

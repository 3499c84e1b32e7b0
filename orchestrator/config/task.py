"""The ``task:`` and ``loss:`` sections and the task registry. Torch-free.

A task is a sub-package of :mod:`orchestrator.tasks` whose torch-free ``config`` module
declares its config models, the metrics and loss components it reports, and registers one
:class:`TaskSpec` in :data:`TASKS`; its implementation (torch) is named by a
``module:attribute`` path and imported only inside a trial. So ``orchestrate validate``
imports pydantic models only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.config.base import StrictModel
from orchestrator.config.registry import Registry


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
    :mod:`orchestrator.config.loss_weighting`.
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


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: its config models, what it reports, where its code lives."""

    config: type[TaskConfig]
    loss: type[LossConfig]
    #: ``module:attribute`` of the :class:`~orchestrator.tasks.base.Task` class, so that
    #: torch is imported only in a trial ("" with a ``runner``); or the class itself
    impl: str | type
    #: writes/checks the task's data once per sweep, in the driver, before trials start
    prepare: Callable[[Any, Path], None]
    #: validation metrics the task reports; objectives must be among these (or ``train/*``)
    val_metrics: tuple[str, ...]
    #: loss component names (``train/loss_<c>``, ``train/raw_<c>``)
    components: tuple[str, ...]
    #: ``module:function(spec, report, *, trial_id, trial_name, trial_dir, restored,
    #: checkpoints)`` that runs a whole trial in place of the built-in loop (a task that
    #: trains outside this process; ``restored``: its state from its last Tune checkpoint,
    #: ``checkpoints``: hand ``report(metrics, folder)`` new ones). None: the loop + ``impl``
    runner: str | None = None
    #: the train/val sets as MLflow dataset records (:mod:`orchestrator.tasks.datasets`),
    #: run in the driver after ``prepare``; None: the task names no data
    describe: Callable[[Any, Path], list[dict[str, Any]]] | None = None
    #: ``module:function(spec, report, restored, *, checkpoints)`` run in every training
    #: process in place of the built-in loop (``training.loop.run_trial``); ``impl`` is then
    #: empty. None: the built-in loop
    worker_loop: str | None = None

    def config_model(self) -> type[TaskConfig]:
        return self.config

    def loss_model(self) -> type[LossConfig]:
        return self.loss

    def task_class(self) -> Any:
        return _load(self.impl) if isinstance(self.impl, str) else self.impl

    def prepare_data(self) -> Callable[[Any, Path], None]:
        return self.prepare

    def trial_runner(self) -> Any:
        return _load(self.runner) if self.runner else None

    def describe_data(self) -> Callable[[Any, Path], list[dict[str, Any]]] | None:
        return self.describe

    def trial_loop(self) -> Any:
        """The function each training process runs: the task's own, or the built-in loop."""
        return _load(self.worker_loop or "orchestrator.training.loop:run_trial")


#: ``task.kind`` -> its :class:`TaskSpec`, registered by each ``orchestrator.tasks.<x>.config``
TASKS: Registry[TaskSpec] = Registry("task kind", ("orchestrator.tasks.*",))


def register_task(kind: str, spec: TaskSpec) -> TaskSpec:
    """Register ``spec`` as ``task.kind: <kind>``."""
    return TASKS.add(kind, spec)


def get_task(kind: Any) -> TaskSpec:
    """The registered task ``kind``, or the installed plugin of that name (registered on
    first use); KeyError lists the known names, built-in and installed."""
    from orchestrator.config.plugins import load_plugin, plugin_names

    if isinstance(kind, str) and kind in TASKS:
        return TASKS.get(kind)
    spec = load_plugin(kind, TaskSpec) if isinstance(kind, str) else None
    if spec is None:
        known = sorted({*TASKS.names(), *plugin_names()})
        raise KeyError(f"unknown task kind {kind!r}; known: {', '.join(known)}")
    return register_task(kind, spec)


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)

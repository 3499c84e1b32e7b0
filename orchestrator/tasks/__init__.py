"""Task registry: ``task.kind`` in a sweep file -> where its config and implementation live.

Entries are import paths, not classes, so looking a task up (``orchestrate validate``)
imports only its pydantic config module, never torch or transformers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from orchestrator.tasks.base import LossConfig, LossOutput, Task, TaskConfig


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: ``module:attribute`` paths (or, from a plugin, the objects
    themselves) plus the names it reports."""

    config: str | type[TaskConfig]
    loss: str | type[LossConfig]
    impl: str | type
    prepare: str | Any
    val_metrics: tuple[str, ...]
    components: tuple[str, ...]
    #: ``module:function`` that runs a whole trial in place of the built-in loop (a task
    #: that trains outside this process); ``impl`` is then empty. None: the loop + ``impl``
    runner: str | None = None
    #: ``module:function(spec, report)`` run in every training process in place of the
    #: built-in loop (``training.loop.run_trial``); ``impl`` is then empty
    worker_loop: str | None = None

    def config_model(self) -> type[TaskConfig]:
        return _load(self.config)

    def loss_model(self) -> type[LossConfig]:
        return _load(self.loss)

    def task_class(self) -> type[Task]:
        return _load(self.impl)

    def prepare_data(self) -> Any:
        return _load(self.prepare)

    def trial_runner(self) -> Any:
        return _load(self.runner) if self.runner else None

    def trial_loop(self) -> Any:
        """The function each training process runs: the task's own, or the built-in loop."""
        return _load(self.worker_loop or "orchestrator.training.loop:run_trial")


TASKS: dict[str, TaskSpec] = {
    "rtdetr": TaskSpec(
        config="orchestrator.tasks.rtdetr.config:RTDetrTaskConfig",
        loss="orchestrator.tasks.rtdetr.config:RTDetrLossConfig",
        impl="orchestrator.tasks.rtdetr.task:RTDetrTask",
        prepare="orchestrator.tasks.rtdetr.config:prepare_data",
        val_metrics=("val/map", "val/map_50", "val/loss_raw"),
        components=("cls", "bbox", "giou"),
    ),
    "detector": TaskSpec(
        config="orchestrator.tasks.detector.config:DetectorTaskConfig",
        loss="orchestrator.tasks.detector.config:DetectorLossConfig",
        impl="orchestrator.tasks.detector.task:DetectorTask",
        prepare="orchestrator.tasks.detector.config:prepare_data",
        val_metrics=("val/map", "val/map_50"),
        components=("cls", "bbox", "rpn_cls", "rpn_bbox"),
    ),
    "regression": TaskSpec(
        config="orchestrator.tasks.regression.config:RegressionTaskConfig",
        loss="orchestrator.tasks.regression.config:RegressionLossConfig",
        impl="orchestrator.tasks.regression.task:RegressionTask",
        prepare="orchestrator.tasks.regression.config:prepare_data",
        val_metrics=("val/mse",),
        components=("mse", "l1"),
    ),
    "ram": TaskSpec(
        config="orchestrator.tasks.ram.config:RamTaskConfig",
        loss="orchestrator.tasks.ram.config:RamLossConfig",
        impl="orchestrator.tasks.ram.task:RamTask",
        prepare="orchestrator.tasks.ram.config:prepare_data",
        val_metrics=("val/map", "val/f1", "val/precision", "val/recall"),
        components=("tag", "distill", "coarse"),
    ),
    # any external training script; its metrics come from task.metrics
    "command": TaskSpec(
        config="orchestrator.tasks.command.config:CommandTaskConfig",
        loss="orchestrator.tasks.command.config:CommandLossConfig",
        impl="",
        prepare="orchestrator.tasks.command.config:prepare_data",
        val_metrics=(),
        components=(),
        runner="orchestrator.tasks.command.runner:run_command_trial",
    ),
    # the user's own training function, reporting through orchestrator.report()
    "python": TaskSpec(
        config="orchestrator.tasks.python.config:PythonTaskConfig",
        loss="orchestrator.tasks.python.config:PythonLossConfig",
        impl="",
        prepare="orchestrator.tasks.python.config:prepare_data",
        val_metrics=(),
        components=(),
        worker_loop="orchestrator.tasks.python.context:run_python_trial",
    ),
}


def get_task(kind: Any) -> TaskSpec:
    """The registered task ``kind``, or the installed plugin of that name (registered on
    first use); KeyError lists the known names."""
    from orchestrator.tasks.plugins import load_plugin, plugin_names

    if not isinstance(kind, str) or kind not in TASKS:
        spec = load_plugin(kind, TaskSpec) if isinstance(kind, str) else None
        if spec is None:
            known = sorted({*TASKS, *plugin_names()})
            raise KeyError(f"unknown task kind {kind!r}; known: {', '.join(known)}")
        TASKS[kind] = spec
    return TASKS[kind]


def _load(path: Any) -> Any:
    """``module:attr`` imported; a plugin's TaskSpec may hold the object itself."""
    if not isinstance(path, str):
        return path
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["TASKS", "LossConfig", "LossOutput", "Task", "TaskConfig", "TaskSpec", "get_task"]

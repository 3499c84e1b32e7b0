"""Tasks: one sub-package per model family, each registering itself from its torch-free
``config`` module (see :mod:`orchestrator.config.task`)."""

from __future__ import annotations

from orchestrator.config.task import TASKS, TaskSpec, get_task, register_task
from orchestrator.tasks.base import LossConfig, LossOutput, Task, TaskConfig

__all__ = [
    "TASKS",
    "LossConfig",
    "LossOutput",
    "Task",
    "TaskConfig",
    "TaskSpec",
    "get_task",
    "register_task",
]

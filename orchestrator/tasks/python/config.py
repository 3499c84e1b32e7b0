"""Config of the ``python`` task (torch-free: ``orchestrate validate`` imports only this).

The trial calls the user's ``entrypoint`` (``my_pkg.train:main``) in every training process;
it reads its trial with :func:`orchestrator.get_trial` and reports each epoch with
:func:`orchestrator.report`. Which metrics it reports is declared by ``task.metrics``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from orchestrator.config.task import TaskConfig, TaskSpec, register_task
from orchestrator.errors import ConfigError
from orchestrator.tasks.command.config import CommandLossConfig

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class PythonTaskConfig(TaskConfig):
    """Call ``entrypoint`` (no arguments) in each training process of a trial."""

    kind: Literal["python"] = "python"
    #: ``package.module:function``; the function takes no arguments
    entrypoint: str
    #: folders put first on ``sys.path`` in every trial process, for code that is not
    #: installed; a relative one is relative to where ``orchestrate`` runs
    path: list[str] = Field(default_factory=list)
    #: the metric names the function reports (``train/...`` or ``val/...``): what
    #: objectives and divergence rules may use
    metrics: list[str] = Field(min_length=1)

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, v: str) -> str:
        if not _ENTRYPOINT.match(v):
            raise ValueError(f"give package.module:function, e.g. my_pkg.train:main, got {v!r}")
        return v

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        # trial processes run in their own folders (or on other nodes of a shared disk)
        return [os.path.abspath(p) for p in v]

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name.startswith(("train/", "val/")) or name in ("train/", "val/"):
                raise ValueError(
                    f"metric names start with train/ or val/ (what MLflow logs and the "
                    f"divergence rules read), got {name!r}"
                )
        return v

    def reported_metrics(self) -> list[str]:
        """The declared ``metrics``."""
        return list(self.metrics)

    def trial_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every hyperparameter the function can read, less ``backend.*``: the built-in
        loop's precision and DeepSpeed settings, which a user's function does not get."""
        return {k: v for k, v in values.items() if not k.startswith("backend.")}

    def sweep_problems(self, sweep: Any) -> list[tuple[tuple[str, ...], str, Any]]:
        """``loss.weighting`` is the built-in loop's; the user's loop weights its own."""
        weighting = getattr(sweep.loss, "weighting", "fixed")
        if weighting == "fixed":
            return []
        return [
            (
                ("loss", "weighting"),
                "loss weighting is done by the built-in training loop; a python entrypoint "
                "combines its own losses (read the weights with get_trial().config)",
                weighting,
            )
        ]

    def load(self) -> Any:
        """The entrypoint function (``path`` first on ``sys.path``)."""
        for folder in reversed(self.path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        module, _, name = self.entrypoint.partition(":")
        return getattr(importlib.import_module(module), name)


class PythonLossConfig(CommandLossConfig):
    """Loss settings of the user's function: any keys (nested mappings of scalars), read
    with ``get_trial().config["loss.<key>"]`` and searched by ``space:``."""


def prepare_data(config: PythonTaskConfig, data_root: Path) -> None:
    """Driver-side check before Ray starts: the entrypoint imports and is callable."""
    for folder in config.path:
        if not os.path.isdir(folder):
            raise ConfigError("is not a directory", key="task.path", value=folder, has_value=True)
    try:
        fn = config.load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot be imported ({type(exc).__name__}: {exc}); install its package or "
            "add its folder to task.path",
            key="task.entrypoint",
            value=config.entrypoint,
            has_value=True,
        ) from None
    if not callable(fn):
        raise ConfigError(
            "is not callable", key="task.entrypoint", value=config.entrypoint, has_value=True
        )


# the user's own training function, reporting through orchestrator.report()
register_task(
    "python",
    TaskSpec(
        config=PythonTaskConfig,
        loss=PythonLossConfig,
        impl="",
        prepare=prepare_data,
        val_metrics=(),
        components=(),
        worker_loop="orchestrator.training.python_trial:run_python_trial",
    ),
)

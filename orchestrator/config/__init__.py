"""Sweep-file models and loading (no torch, Ray or MLflow imports).

The names below are loaded on first use, so ``orchestrator.config.base`` (which every config
model of the lower packages imports) does not pull in the loader and the task registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.config.loader import load_sweep
    from orchestrator.config.models import Objective, ParamSpec, SweepConfig

__all__ = ["Objective", "ParamSpec", "SweepConfig", "load_sweep"]


def __getattr__(name: str) -> Any:
    if name == "load_sweep":
        from orchestrator.config.loader import load_sweep

        return load_sweep
    if name in ("Objective", "ParamSpec", "SweepConfig"):
        from orchestrator.config import models

        return getattr(models, name)
    raise AttributeError(name)

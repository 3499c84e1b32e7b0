"""Sweep-file models and loading (no torch, Ray or MLflow imports)."""

from orchestrator.config.loader import load_sweep
from orchestrator.config.models import Objective, ParamSpec, SweepConfig

__all__ = ["Objective", "ParamSpec", "SweepConfig", "load_sweep"]

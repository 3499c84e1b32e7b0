"""Trial training: the Accelerate loop, batch sharding and the trial's resolved settings."""

from orchestrator.training.spec import ResolvedTrial, TrialSpec, resolve

__all__ = ["ResolvedTrial", "TrialSpec", "resolve"]

"""Search spaces: YAML ``space:`` -> Optuna define-by-run (conditions and batch arithmetic
are checked in :mod:`orchestrator.config`)."""

from orchestrator.search_space.space import SearchSpace, apply_params

__all__ = ["SearchSpace", "apply_params"]

"""Search spaces: YAML ``space:`` -> Optuna define-by-run; conditions; batch arithmetic."""

from orchestrator.search_space.batch import BatchPlan, batch_problem, plan_batch
from orchestrator.search_space.space import SearchSpace, apply_params

__all__ = ["BatchPlan", "SearchSpace", "apply_params", "batch_problem", "plan_batch"]

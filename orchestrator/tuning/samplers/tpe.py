"""``tpe``: Optuna's tree-structured Parzen estimator (the default)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from orchestrator.config.models import SAMPLERS, SamplerConfig


@SAMPLERS.register
class TPESampler(SamplerConfig):
    """TPE; ``multivariate`` models the parameters jointly, per branch of a conditional
    space."""

    kind: Literal["tpe"] = "tpe"
    multivariate: bool = True
    n_startup_trials: int = Field(4, ge=0)

    def build(self, *, concurrent: bool) -> Any:
        import optuna

        return optuna.samplers.TPESampler(
            seed=self.seed,
            multivariate=self.multivariate,
            group=self.multivariate,  # conditional spaces need group=True to stay multivariate
            constant_liar=concurrent,
            n_startup_trials=self.n_startup_trials,
        )

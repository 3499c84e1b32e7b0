"""``tpe``: Optuna's tree-structured Parzen estimator (the default)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from orchestrator.config.models import SAMPLERS, ParamSpec, SamplerConfig


@SAMPLERS.register
class TPESampler(SamplerConfig):
    """TPE; ``multivariate`` models the parameters jointly, per branch of a conditional
    space (``group=True``: an inactive branch's parameters are simply absent)."""

    kind: Literal["tpe"] = "tpe"
    multivariate: bool = True
    n_startup_trials: int = Field(4, ge=0)
    #: candidates drawn from l(x) per suggestion; the best l/g ratio wins
    n_ei_candidates: int = Field(24, ge=1)

    reads_constraints: ClassVar[bool] = True

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        return optuna.samplers.TPESampler(
            seed=self.seed,
            multivariate=self.multivariate,
            group=self.multivariate,  # conditional spaces need group=True to stay multivariate
            constant_liar=concurrent,
            n_startup_trials=self.n_startup_trials,
            n_ei_candidates=self.n_ei_candidates,
        )

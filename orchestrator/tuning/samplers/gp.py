"""``gp``: Optuna's Gaussian-process sampler (log expected improvement, constraints,
several objectives); strong on small continuous spaces and small budgets."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from orchestrator.config.models import SAMPLERS, ParamSpec, SamplerConfig


@SAMPLERS.register
class GPSampler(SamplerConfig):
    """GP-based Bayesian optimisation over the parameters every trial shares.

    A conditional branch's parameters are not in every trial, so they are outside the GP's
    joint space and drawn at random (Optuna's independent sampler) when active.
    """

    kind: Literal["gp"] = "gp"
    #: completed trials drawn at random before the GP is fitted
    n_startup_trials: int = Field(10, ge=0)
    #: the objective has no noise (same configuration, same value): fit without noise
    deterministic_objective: bool = False

    reads_constraints: ClassVar[bool] = True

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        return optuna.samplers.GPSampler(
            seed=self.seed,
            n_startup_trials=self.n_startup_trials,
            deterministic_objective=self.deterministic_objective,
            independent_sampler=optuna.samplers.RandomSampler(seed=self.seed),
            warn_independent_sampling=False,
        )

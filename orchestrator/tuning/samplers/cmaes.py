"""``cmaes``: Optuna's CMA-ES sampler (the ``cmaes`` package); continuous and integer
parameters, one objective, larger budgets."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from orchestrator.config.models import SAMPLERS, ParamSpec, SamplerConfig


@SAMPLERS.register
class CmaEsSampler(SamplerConfig):
    """CMA-ES over every ``float``/``int`` parameter. It has no model of categories, so a
    ``choice`` parameter or a ``when:`` branch is a config error rather than the silent
    random sampling Optuna would fall back to."""

    kind: Literal["cmaes"] = "cmaes"
    #: initial step size in the normalised space; null = 1/6 of the ranges' width
    sigma0: float | None = Field(None, gt=0)
    #: trials drawn at random before the first generation
    n_startup_trials: int = Field(1, ge=0)
    #: population per generation; null = CMA-ES's 4 + 3 ln(dimensions)
    popsize: int | None = Field(None, ge=2)
    #: ``ipop``: restart with a doubled population when the search stalls
    restart_strategy: Literal["none", "ipop", "bipop"] = "none"
    #: learn from pruned (e.g. diverged) trials' last intermediate values
    consider_pruned_trials: bool = False
    #: CMA-ES with margin: keeps integer parameters from getting stuck on one value
    with_margin: bool = False

    multi_objective: ClassVar[bool] = False

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        return optuna.samplers.CmaEsSampler(
            seed=self.seed,
            sigma0=self.sigma0,
            n_startup_trials=self.n_startup_trials,
            popsize=self.popsize,
            restart_strategy=None if self.restart_strategy == "none" else self.restart_strategy,
            inc_popsize=2 if self.restart_strategy != "none" else -1,
            consider_pruned_trials=self.consider_pruned_trials,
            with_margin=self.with_margin,
            independent_sampler=optuna.samplers.RandomSampler(seed=self.seed),
            warn_independent_sampling=False,
        )

    def space_problems(
        self, space: dict[str, ParamSpec], num_samples: int
    ) -> list[tuple[tuple[str, ...], str, Any]]:
        out: list[tuple[tuple[str, ...], str, Any]] = []
        for name, spec in space.items():
            if spec.choice is not None:
                out.append(
                    (
                        ("space", name),
                        "CMA-ES cannot search a choice parameter (it models only numbers); "
                        "use sampler kind tpe, gp or nsga2, or fix this key",
                        spec.choice,
                    )
                )
            elif spec.when is not None:
                out.append(
                    (
                        ("space", name, "when"),
                        "CMA-ES needs every parameter in every trial; a conditional "
                        "parameter would be sampled at random (use tpe)",
                        spec.when,
                    )
                )
        return out

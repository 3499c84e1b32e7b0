"""``pbt``: population-based training (Ray's ``PopulationBasedTraining``, docs/pbt.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from orchestrator.config.models import SCHEDULERS, ParamSpec
from orchestrator.tuning.schedulers.population import PopulationScheduler

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


@SCHEDULERS.register
class PbtScheduler(PopulationScheduler):
    """Every ``perturbation_interval`` epochs the bottom ``quantile_fraction`` of the members
    clone a top member's checkpoint and config, then perturb the ``mutate`` keys: a range
    is multiplied by one of ``perturbation_factors`` (kept inside its range) or, with
    ``resample_probability``, drawn again; a choice moves to a neighbouring value or is
    drawn again."""

    kind: Literal["pbt"] = "pbt"
    resample_probability: float = Field(0.25, ge=0, le=1)
    perturbation_factors: tuple[float, float] = (1.2, 0.8)
    #: no member is cloned before this many epochs (young curves rank by luck)
    burn_in: int = Field(0, ge=0)

    @field_validator("perturbation_factors")
    @classmethod
    def _positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if min(value) <= 0:
            raise ValueError(f"factors must be > 0, got {list(value)}")
        return value

    def _build(
        self, specs: dict[str, ParamSpec], metric: str, mode: str, last_epoch: int
    ) -> TrialScheduler:
        from orchestrator.tuning.population_scheduler import (
            KeepInSpace,
            SweepPBT,
            mutation_domain,
        )

        return SweepPBT(
            last_epoch=last_epoch,
            metric=metric,
            mode=mode,
            perturbation_interval=self.perturbation_interval,
            burn_in_period=self.burn_in,
            hyperparam_mutations={k: mutation_domain(s) for k, s in specs.items()},
            quantile_fraction=self.quantile_fraction,
            resample_probability=self.resample_probability,
            perturbation_factors=self.perturbation_factors,
            custom_explore_fn=KeepInSpace(specs),
            synch=self.synchronous,
        )

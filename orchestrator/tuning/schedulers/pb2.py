"""``pb2``: population-based bandits (Ray's ``PB2``, docs/pbt.md): PBT whose new values
come from a Gaussian-process bandit over the members' recent progress instead of random
perturbations. Needs scikit-learn (``pip install -e .[pb2]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from orchestrator.config.models import SCHEDULERS, ParamSpec
from orchestrator.tuning.schedulers.population import PopulationScheduler

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


@SCHEDULERS.register
class Pb2Scheduler(PopulationScheduler):
    """Like ``pbt``, but the cloned member's new values of the ``mutate`` ranges are chosen
    by a GP-UCB bandit fitted to how much each member improved per epoch with its values.
    Ranges only; it explores each range on a linear scale, whatever its ``log``."""

    kind: Literal["pb2"] = "pb2"

    categorical: ClassVar[bool] = False

    def _build(
        self, specs: dict[str, ParamSpec], metric: str, mode: str, last_epoch: int
    ) -> TrialScheduler:
        from orchestrator.tuning.population_scheduler import KeepInSpace, SweepPB2

        return SweepPB2(
            last_epoch=last_epoch,
            metric=metric,
            mode=mode,
            perturbation_interval=self.perturbation_interval,
            hyperparam_bounds={k: list(s.bounds) for k, s in specs.items()},
            quantile_fraction=self.quantile_fraction,
            custom_explore_fn=KeepInSpace(specs),
            synch=self.synchronous,
        )

"""``qmc``: quasi-Monte-Carlo (Sobol or Halton) points, a better spread than random."""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.config.models import SAMPLERS, ParamSpec, SamplerConfig


@SAMPLERS.register
class QMCSampler(SamplerConfig):
    """Low-discrepancy sequence over the space of the first trial; a branch that trial did
    not take is drawn at random when active. Learns nothing from results."""

    kind: Literal["qmc"] = "qmc"
    qmc_type: Literal["sobol", "halton"] = "sobol"
    #: randomise the sequence (with ``seed``); unscrambled Sobol starts at the corner
    scramble: bool = True

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        return optuna.samplers.QMCSampler(
            qmc_type=self.qmc_type,
            scramble=self.scramble,
            seed=self.seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=self.seed),
            warn_asynchronous_seeding=False,
            warn_independent_sampling=False,
        )

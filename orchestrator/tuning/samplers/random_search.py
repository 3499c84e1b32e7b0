"""``random``: independent uniform sampling (Optuna's ``RandomSampler``)."""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.config.models import SAMPLERS, SamplerConfig


@SAMPLERS.register
class RandomSampler(SamplerConfig):
    """Every parameter drawn at random, independently of past trials."""

    kind: Literal["random"] = "random"

    def build(self, *, concurrent: bool) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=self.seed)

"""``stopping.divergence`` -> one detector: ``build_rules``."""

from __future__ import annotations

from typing import Literal, cast

from orchestrator.config.divergence import DivergenceConfig
from orchestrator.divergence.base import DivergenceDetector
from orchestrator.divergence.combinator import AnyOf


def build_rules(
    config: DivergenceConfig,
    objective: tuple[str, Literal["min", "max"]] | None = None,
) -> DivergenceDetector:
    """The enabled rules of ``config`` as one :class:`AnyOf`, in tie order.

    ``objective`` is the sweep's primary ``(metric, mode)``; a rule that needs it (``collapse``
    without a metric) reads it in its ``build``.
    """
    return AnyOf([cast(DivergenceDetector, rule.build(objective)) for rule in config.rules()])

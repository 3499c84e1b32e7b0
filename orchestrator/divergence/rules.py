"""``stopping.divergence`` -> one detector: the ``DETECTORS`` registry and ``build_rules``."""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.divergence.base import DivergenceDetector
from orchestrator.divergence.collapse import CollapseDetector
from orchestrator.divergence.combinator import AnyOf
from orchestrator.divergence.components import ComponentsDetector
from orchestrator.divergence.config import DivergenceConfig, RuleConfig
from orchestrator.divergence.explosion import ExplosionDetector
from orchestrator.divergence.grad_norm import GradNormDetector
from orchestrator.divergence.nonfinite import NonfiniteDetector
from orchestrator.divergence.oscillation import OscillationDetector
from orchestrator.divergence.plateau import PlateauDetector
from orchestrator.divergence.skipped import SkippedStepsDetector
from orchestrator.divergence.spike import SpikeDetector

#: ``stopping.divergence.<key>`` -> the detector class; the key's model fields other than
#: ``enabled`` are the class's keyword arguments.
DETECTORS: dict[str, type[DivergenceDetector]] = {
    "nonfinite": NonfiniteDetector,
    "components": ComponentsDetector,
    "grad_norm": GradNormDetector,
    "amp_overflow": SkippedStepsDetector,
    "explosion": ExplosionDetector,
    "spike": SpikeDetector,
    "oscillation": OscillationDetector,
    "collapse": CollapseDetector,
    "plateau": PlateauDetector,
}

#: what collapse watches when neither it nor a maximised objective names a metric
DEFAULT_COLLAPSE_METRIC = "val/map"


def rule_kwargs(rule: RuleConfig) -> dict[str, Any]:
    """A rule's thresholds as keyword arguments of its detector."""
    return rule.model_dump(exclude={"enabled"})


def build_rules(
    config: DivergenceConfig,
    objective: tuple[str, Literal["min", "max"]] | None = None,
) -> DivergenceDetector:
    """The enabled rules of ``config`` as one :class:`AnyOf`, in the config's tie order.

    ``objective`` is the sweep's primary ``(metric, mode)``: ``collapse`` without a metric
    watches it when it is maximised (a minimised objective cannot collapse towards zero, so
    ``val/map`` is watched instead, and the rule stays silent where it is not reported).
    """
    detectors: list[DivergenceDetector] = []
    for name in config.enabled():
        kwargs = rule_kwargs(getattr(config, name))
        if name == "collapse" and kwargs["metric"] is None:
            maximised = objective is not None and objective[1] == "max"
            kwargs["metric"] = objective[0] if objective and maximised else DEFAULT_COLLAPSE_METRIC
        detectors.append(DETECTORS[name](**kwargs))
    return AnyOf(detectors)

"""Divergence-aware stopping: rules that read a trial's reports and say why to stop it.

``build_rules(config.stopping.divergence)`` gives one detector; ``detector.check(history)``
returns the earliest :class:`StopReason` or ``None``. See :mod:`orchestrator.divergence.base`.
Each rule is one module: its detector and its registered settings model (``RULES``).
"""

from orchestrator.config.divergence import RULES, DivergenceConfig, RuleConfig, register_rule
from orchestrator.divergence.base import DivergenceDetector, History, StopReason
from orchestrator.divergence.collapse import CollapseDetector
from orchestrator.divergence.combinator import AnyOf
from orchestrator.divergence.components import ComponentsDetector
from orchestrator.divergence.explosion import ExplosionDetector
from orchestrator.divergence.grad_norm import GradNormDetector
from orchestrator.divergence.nonfinite import NonfiniteDetector
from orchestrator.divergence.oscillation import OscillationDetector
from orchestrator.divergence.plateau import PlateauDetector
from orchestrator.divergence.rules import build_rules
from orchestrator.divergence.skipped import SkippedStepsDetector
from orchestrator.divergence.spike import SpikeDetector

__all__ = [
    "RULES",
    "AnyOf",
    "CollapseDetector",
    "ComponentsDetector",
    "DivergenceConfig",
    "DivergenceDetector",
    "ExplosionDetector",
    "GradNormDetector",
    "History",
    "NonfiniteDetector",
    "OscillationDetector",
    "PlateauDetector",
    "RuleConfig",
    "SkippedStepsDetector",
    "SpikeDetector",
    "StopReason",
    "build_rules",
    "register_rule",
]

"""``stopping.divergence`` in the sweep file: one sub-model per rule. Torch-free.

Every rule is on by default and can be written as a bool (``spike: false`` disables it,
``nonfinite: true`` is the form older sweep files use) or as a mapping of its thresholds::

    stopping:
      divergence:
        spike: {factor: 3, patience: 3}
        plateau: false

The defaults are tuned on ``bench/curves/generated.jsonl`` (see ``docs/architecture.md``):
they stop every diverged family there and no healthy trial with a top-10% final ``val/map``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from orchestrator.tasks.base import StrictModel


class RuleConfig(StrictModel):
    """Common part of every rule: ``enabled``, and the bool shorthand."""

    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _bool_shorthand(cls, data: Any) -> Any:
        return {"enabled": data} if isinstance(data, bool) else data


class NonfiniteRule(RuleConfig):
    """Stop on the first NaN/±inf of a watched metric."""

    #: null: every numeric ``train/*`` and ``val/*`` metric
    metrics: list[str] | None = Field(None, min_length=1)


class ComponentsRule(RuleConfig):
    """Explosion, collapse and NaN rules on every ``train/raw_<c>`` loss component."""

    #: a component above ``factor`` × its reference is exploding; 10× its best is far
    #: beyond the spikes of healthy training, yet reached within a few reports of a blow-up
    factor: float = Field(10.0, gt=1)
    reference: Literal["initial", "best"] = "best"
    #: also stop on a NaN/inf component (the total usually turns NaN in the same report)
    nonfinite: bool = True
    #: a component below this fraction of its first value has collapsed; null disables
    collapse_ratio: float | None = Field(1e-3, gt=0, lt=1)


class GradNormRule(RuleConfig):
    """``train/grad_norm`` far above its early level (``grad_explosion``)."""

    metric: str = Field("train/grad_norm", min_length=1)
    #: healthy norms drift by 2-3× over a run; 10× the early median is a blow-up
    factor: float = Field(10.0, gt=1)
    #: reports whose median is the run's own scale
    warmup: int = Field(3, ge=1)
    patience: int = Field(1, ge=1)


class AmpOverflowRule(RuleConfig):
    """fp16 loss scaling that keeps skipping steps (``amp_overflow``); a few are normal."""

    metric: str = Field("train/skipped_frac", min_length=1)
    max_fraction: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(2, ge=1)


class ExplosionRule(RuleConfig):
    """A minimised metric far above its first or best value."""

    metric: str = Field("train/loss", min_length=1)
    factor: float = Field(10.0, gt=1)
    reference: Literal["initial", "best"] = "best"


class SpikeRule(RuleConfig):
    """A minimised metric above ``factor`` × its EMA for ``patience`` reports in a row."""

    metric: str = Field("train/loss", min_length=1)
    #: healthy epoch-averaged losses move by a few percent per epoch; doubling is abnormal
    factor: float = Field(2.0, gt=1)
    #: EMA smoothing: weight of the newest value
    alpha: float = Field(0.3, gt=0, lt=1)
    #: reports that only feed the EMA
    warmup: int = Field(3, ge=1)
    #: 2: one spike that recovers on the next report is tolerated
    patience: int = Field(2, ge=1)


class OscillationRule(RuleConfig):
    """Large zig-zag of a metric over a window (learning rate too high)."""

    metric: str = Field("train/loss", min_length=1)
    window: int = Field(6, ge=3)
    #: fraction of the ``window - 2`` possible direction changes that must occur
    min_flips: float = Field(0.75, gt=0, le=1)
    #: median |difference| relative to the median level; noise near convergence is ~5%
    min_amplitude: float = Field(0.15, gt=0, lt=1)


class CollapseRule(RuleConfig):
    """A maximised metric that stays dead or falls far from its best."""

    #: null: the primary objective when it is maximised, else ``val/map``
    metric: str | None = Field(None, min_length=1)
    #: below this after ``min_evals`` evaluations: the run never learned
    floor: float | None = Field(0.02, gt=0)
    min_evals: int = Field(10, ge=1)
    #: ... for this many evaluations in a row (a slow starter's first rise is not missed)
    patience: int = Field(3, ge=1)
    #: a fall by this fraction of the best running median stops the run ...
    drop: float | None = Field(0.5, gt=0, lt=1)
    #: ... once the best reached this much (a fall from near zero is noise) ...
    min_best: float = Field(0.05, gt=0)
    #: ... comparing medians of this many evaluations (one bad read of a small validation
    #: set moves no median of 3) ...
    window: int = Field(3, ge=1)
    #: ... and the fall exceeds this many times the curve's own noise (the best of many
    #: running medians sits ~2 noise units high, the current one can sit ~2 low)
    noise: float = Field(4.0, ge=0)


class PlateauRule(RuleConfig):
    """A metric that never improved stays flat."""

    metric: str = Field("train/loss", min_length=1)
    mode: Literal["min", "max"] = "min"
    window: int = Field(6, ge=2)
    #: relative improvement of the best over ``window`` reports below this is flat
    min_improvement: float = Field(0.02, gt=0, lt=1)
    #: no plateau before this many reports: slow starters sit flat for several epochs
    warmup: int = Field(10, ge=0)
    #: a best this much better than the first value means the run learned (converging, not
    #: stuck); null stops converged runs too
    min_progress: float | None = Field(0.25, gt=0)


class DivergenceConfig(StrictModel):
    """Divergence rules applied to every report; a trial stops at the first that fires.

    Field order is the tie order when two rules fire on the same report.
    """

    nonfinite: NonfiniteRule = Field(default_factory=NonfiniteRule)
    components: ComponentsRule = Field(default_factory=ComponentsRule)
    grad_norm: GradNormRule = Field(default_factory=GradNormRule)
    amp_overflow: AmpOverflowRule = Field(default_factory=AmpOverflowRule)
    explosion: ExplosionRule = Field(default_factory=ExplosionRule)
    spike: SpikeRule = Field(default_factory=SpikeRule)
    oscillation: OscillationRule = Field(default_factory=OscillationRule)
    collapse: CollapseRule = Field(default_factory=CollapseRule)
    plateau: PlateauRule = Field(default_factory=PlateauRule)

    def enabled(self) -> list[str]:
        """Names of the rules that are on, in tie order."""
        return [name for name in type(self).model_fields if getattr(self, name).enabled]

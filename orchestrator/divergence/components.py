"""``components``: explosion, collapse and NaN rules applied to every raw loss component."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from orchestrator.config.divergence import RuleConfig, register_rule
from orchestrator.divergence.base import (
    DivergenceDetector,
    History,
    StopReason,
    finite_series,
    fmt,
    require,
)
from orchestrator.divergence.explosion import ExplosionDetector, Reference
from orchestrator.divergence.nonfinite import NonfiniteDetector


class ComponentsDetector(DivergenceDetector):
    """Watches each ``<prefix><c>`` key found in the history (``train/raw_cls`` ...).

    A sweep over loss weights can give a component a tiny weight: its raw value may then
    explode while the weighted total still looks fine, and the model it trains is broken all
    the same. Codes are ``component_explosion:loss_<c>`` and ``component_nonfinite:loss_<c>``;
    the earliest component wins, ties in sorted name order.

    A component can also *collapse*: fall below ``collapse_ratio`` × its first value
    (``component_collapse:loss_<c>``). Healthy detection losses shrink by 3-30× over a run;
    a term at a thousandth of its start has stopped carrying signal (a classification loss
    under a near-zero background weight that predicts background everywhere, a box term
    with no matched queries), while the total may look like steady progress.
    """

    name = "components"

    def __init__(
        self,
        prefix: str = "train/raw_",
        *,
        factor: float = 20.0,
        reference: Reference = "best",
        nonfinite: bool = True,
        collapse_ratio: float | None = 1e-3,
    ) -> None:
        require(isinstance(prefix, str) and bool(prefix), self.name, "prefix", prefix, "non-empty")
        if collapse_ratio is not None:
            require(
                0 < collapse_ratio < 1, self.name, "collapse_ratio", collapse_ratio, "in (0, 1)"
            )
        self.collapse_ratio = collapse_ratio
        # builds one detector to check factor and reference now, not at the first report
        ExplosionDetector(prefix + "x", factor=factor, reference=reference)
        self.prefix, self.factor, self.reference, self.nonfinite = (
            prefix,
            factor,
            reference,
            nonfinite,
        )

    def check(self, history: History) -> StopReason | None:
        keys = sorted({k for report in history for k in report if k.startswith(self.prefix)})
        found: StopReason | None = None
        for key in keys:
            component = "loss_" + key[len(self.prefix) :]
            rules: list[DivergenceDetector] = []
            if self.nonfinite:
                rules.append(NonfiniteDetector([key], code=f"component_nonfinite:{component}"))
            rules.append(
                ExplosionDetector(
                    key,
                    factor=self.factor,
                    reference=self.reference,
                    code=f"component_explosion:{component}",
                )
            )
            reasons = [rule.check(history) for rule in rules]
            reasons.append(self._collapse(history, key, component))
            for reason in reasons:
                if reason is not None and (found is None or reason.index < found.index):
                    found = reason
        return found

    def _collapse(self, history: History, key: str, component: str) -> StopReason | None:
        if self.collapse_ratio is None:
            return None
        series = finite_series(history, key)
        if not series or series[0][1] <= 0:
            return None
        first = series[0][1]
        for i, v in series[1:]:
            if v < self.collapse_ratio * first:
                detail = (
                    f"{key} = {fmt(v)} < {self.collapse_ratio:g} × its first value {fmt(first)}"
                )
                return StopReason(f"component_collapse:{component}", detail, i)
        return None


@register_rule
class ComponentsRule(RuleConfig):
    """Explosion, collapse and NaN rules on every ``train/raw_<c>`` loss component."""

    name: ClassVar[str] = "components"
    priority: ClassVar[int] = 20
    detector: ClassVar[type[DivergenceDetector]] = ComponentsDetector

    #: a component above ``factor`` × its reference is exploding; 20× its best is far
    #: beyond the spikes of healthy training, yet reached within a few reports of a blow-up.
    #: Not 10×: a two-stage detector's box term starts near zero (no proposal matches yet)
    #: and grows 10-15× as proposals improve (bench/curves/detector_recorded.jsonl's tuning
    #: half: 4 of 8 healthy runs stopped at 10×, none at 20×)
    factor: float = Field(20.0, gt=1)
    reference: Literal["initial", "best"] = "best"
    #: also stop on a NaN/inf component (the total usually turns NaN in the same report)
    nonfinite: bool = True
    #: a component below this fraction of its first value has collapsed; null disables
    collapse_ratio: float | None = Field(1e-3, gt=0, lt=1)

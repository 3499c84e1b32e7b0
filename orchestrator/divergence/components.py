"""``components``: the explosion and nonfinite rules applied to every raw loss component."""

from __future__ import annotations

from orchestrator.divergence.base import (
    DivergenceDetector,
    History,
    StopReason,
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
    """

    name = "components"

    def __init__(
        self,
        prefix: str = "train/raw_",
        *,
        factor: float = 10.0,
        reference: Reference = "best",
        nonfinite: bool = True,
    ) -> None:
        require(isinstance(prefix, str) and bool(prefix), self.name, "prefix", prefix, "non-empty")
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
            for rule in rules:
                reason = rule.check(history)
                if reason is not None and (found is None or reason.index < found.index):
                    found = reason
        return found

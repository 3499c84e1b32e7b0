"""The divergence rules a trial runs on its own reports, one epoch at a time.

The built-in loop and the ``command`` task both stop a diverging trial themselves, before
the report that says why (Tune may end the trial as soon as it sees that report); this is
the one check both use: it keeps the trial's history and turns a firing rule into the stop
keys of the report.
"""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.config.divergence import DivergenceConfig
from orchestrator.divergence.base import StopReason
from orchestrator.divergence.rules import build_rules
from orchestrator.reserved import STOP_DETAIL, STOP_REASON, STOP_STEP


class EpochCheck:
    """``stopping.divergence`` over a trial's reports so far, one report per epoch."""

    def __init__(
        self, config: DivergenceConfig, objective: tuple[str, Literal["min", "max"]]
    ) -> None:
        self.rules = build_rules(config, objective)
        #: every report added so far, oldest first
        self.history: list[dict[str, Any]] = []

    def add(self, report: dict[str, Any], *, judge: bool = True) -> StopReason | None:
        """Append ``report`` and return the reason to stop at it, if a rule fires there.

        ``judge=False`` only records it: a DDP rank without the evaluation keeps the same
        history as rank 0 and follows rank 0's verdict.
        """
        self.history.append(report)
        if not judge:
            return None
        return self.rules.check(self.history)


def stop_keys(reason: StopReason, step: int) -> dict[str, Any]:
    """The report keys that say why a trial stopped, and at which step."""
    return {STOP_REASON: reason.code, STOP_DETAIL: reason.detail, STOP_STEP: step}

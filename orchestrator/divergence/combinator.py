"""``AnyOf``: several rules as one."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.divergence.base import DivergenceDetector, History, StopReason


class AnyOf(DivergenceDetector):
    """Fires when any rule fires: the earliest reason (smallest index), ties in given order.

    With no rules it never fires, so disabling every rule needs no special case.
    """

    name = "any_of"

    def __init__(self, detectors: Iterable[DivergenceDetector]) -> None:
        self.detectors = tuple(detectors)
        for d in self.detectors:
            if not isinstance(d, DivergenceDetector):
                raise ValueError(f"any_of: detectors must be DivergenceDetector, got {d!r}")

    def check(self, history: History) -> StopReason | None:
        found: StopReason | None = None
        for detector in self.detectors:
            reason = detector.check(history)
            if reason is not None and (found is None or reason.index < found.index):
                found = reason
        return found

"""``none``: every trial runs all its epochs (Ray's FIFO scheduler)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from orchestrator.config.models import SCHEDULERS, SchedulerConfig

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler


@SCHEDULERS.register
class NoScheduler(SchedulerConfig):
    """No early stopping by a scheduler (the divergence rules still apply)."""

    kind: Literal["none"] = "none"

    def build(
        self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True
    ) -> TrialScheduler:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()

"""Learning-rate schedules by epoch: the factor applied to ``optim.lr``.

Pure Python (no torch), so the trial loop (which turns the factor into a ``LambdaLR``) and
the forecast scheduler (which must know whether a trial's LR still drops before its last
epoch) read the same schedule.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from orchestrator.config.base import StrictModel

#: a factor falls this much, relative to now, for a schedule to count as "dropping ahead"
_DROP = 1e-9


class LrSchedule(StrictModel):
    """``optim.schedule``: how the learning rate moves over the epochs, after warm-up.

    * ``constant``: ``lr`` throughout.
    * ``step``: ``lr x gamma^floor(epoch / step_size)``.
    * ``multistep``: ``lr x gamma^(number of milestones passed)`` (detector recipes: drop
      by 10 at epoch 60 of 72 is ``{kind: multistep, milestones: [60], gamma: 0.1}``).
    * ``cosine``: from ``lr`` at epoch 0 to ``lr x min_factor`` at the last epoch.

    ``milestones`` and ``step_size`` are read only by the kind that uses them.

    Epochs are fractional inside the loop (``epoch = step / steps_per_epoch``), so a
    milestone takes effect at the first step of that epoch.
    """

    kind: Literal["constant", "step", "multistep", "cosine"] = "constant"
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(0.1, gt=0, le=1)
    step_size: int | None = Field(None, ge=1)
    min_factor: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> LrSchedule:
        # milestones / step_size may stay set under another kind (ignored there), so that
        # ``optim.schedule.kind`` can be searched over a fixed set of the other keys
        if self.kind == "multistep" and not self.milestones:
            raise ValueError("multistep needs milestones (epochs), e.g. [60]")
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {self.milestones}")
        if self.kind == "step" and self.step_size is None:
            raise ValueError("step needs step_size (epochs)")
        return self

    def factor(self, epoch: float, epochs: int) -> float:
        """The multiplier of ``optim.lr`` at ``epoch`` (0-based, fractional) of ``epochs``."""
        if self.kind == "step":
            assert self.step_size is not None
            return float(self.gamma ** math.floor(epoch / self.step_size))
        if self.kind == "multistep":
            return float(self.gamma ** sum(1 for m in self.milestones if epoch >= m))
        if self.kind == "cosine":
            x = min(max(epoch / max(epochs, 1), 0.0), 1.0)
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * x))
        return 1.0

    def drop_ahead(self, epochs_done: float, epochs: int) -> float:
        """How much of the learning rate the rest of the run still takes away: ``1 - factor
        at the last epoch / factor now`` (0 for a constant schedule or one already at its
        floor; 0.9 for one ×0.1 drop ahead)."""
        now = self.factor(epochs_done, epochs)
        end = self.factor(max(epochs - 1, epochs_done), epochs)
        if now <= 0 or end >= now - _DROP:
            return 0.0
        return 1.0 - end / now


def schedule_with(base: LrSchedule, params: dict[str, Any]) -> LrSchedule:
    """``base`` with a trial's sampled ``optim.schedule.*`` values (flat keys) applied."""
    prefix = "optim.schedule."
    changes = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    if not changes:
        return base
    return LrSchedule.model_validate({**base.model_dump(), **changes})

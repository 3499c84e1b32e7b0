"""What the report is built from: plain data read from MLflow, no MLflow objects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orchestrator.reserved import EFFECTIVE_BATCH, PHASE, STOP_DETAIL, STOP_REASON

#: tags of the seed-repeat contract: extra child runs of a sweep that re-run a trial's
#: configuration with another seed
REPEAT_PHASE = "repeat"


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective of the sweep (from its resolved sweep file)."""

    metric: str
    mode: str  # "max" | "min"


@dataclass
class Trial:
    """One child run of a sweep as it ended: final metrics, params, tags."""

    run_id: str
    name: str
    status: str  # MLflow run status: FINISHED, FAILED, KILLED, RUNNING
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_ms: int | None = None
    end_ms: int | None = None
    #: the searched parameters as sampled (typed, inactive conditional ones absent); None
    #: when unknown (no space, or logged values that do not fit it)
    sampled: dict[str, Any] | None = None

    @property
    def stop_reason(self) -> str:
        return self.tags.get(STOP_REASON, "")

    @property
    def stop_detail(self) -> str:
        return self.tags.get(STOP_DETAIL, "")

    @property
    def effective_batch(self) -> int | None:
        raw = self.tags.get(EFFECTIVE_BATCH) or self.params.get("batch.effective")
        try:
            return int(float(raw)) if raw not in (None, "") else None
        except ValueError:
            return None

    @property
    def wall_s(self) -> float | None:
        if self.start_ms is None or self.end_ms is None:
            return None
        return max(0.0, (self.end_ms - self.start_ms) / 1000.0)

    @property
    def is_repeat(self) -> bool:
        return self.tags.get(PHASE) == REPEAT_PHASE

    def objective(self, metric: str) -> float | None:
        """The run's final value of ``metric``, or None when missing or not finite."""
        v = self.metrics.get(metric)
        return v if v is not None and math.isfinite(v) else None


@dataclass
class SweepData:
    """A sweep's parent run and its trials (repeats apart)."""

    name: str
    parent_run_id: str
    experiment: str
    tracking_uri: str
    objectives: list[ObjectiveSpec]
    #: the resolved sweep file's ``space:`` (parameter -> its spec as plain data)
    space: dict[str, dict[str, Any]]
    trials: list[Trial]
    repeats: list[Trial] = field(default_factory=list)

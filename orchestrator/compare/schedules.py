"""The schedule each member of a population sweep (``pbt``, ``pb2``) followed.

MLflow params hold a member's *starting* values (params are immutable); the values in force
are its ``hp/<key>`` metrics, one point per epoch, and its clones are the ``orch.pbt.*``
tags (docs/pbt.md). A schedule is the run's ``hp/`` curves cut into the spans in which no
value changed, each with the member it had just been cloned from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.compare.records import Trial
from orchestrator.config.metrics import IN_FORCE_PREFIX
from orchestrator.reserved import PBT_LINEAGE, TRIAL_ID


@dataclass
class Span:
    """Epochs ``first``..``last`` (1-based) trained with ``values``; ``cloned_from``: the
    member whose checkpoint the span started from (None: the member's own line)."""

    first: int
    last: int
    values: dict[str, float]
    cloned_from: str | None = None


@dataclass
class Schedule:
    trial: Trial
    spans: list[Span] = field(default_factory=list)


def in_force_keys(trial: Trial) -> list[str]:
    """The ``hp/`` metrics of a run (the keys a population scheduler changed)."""
    return sorted(k for k in trial.metrics if k.startswith(IN_FORCE_PREFIX))


def schedule_of(
    trial: Trial, curves: dict[str, list[tuple[int, float]]], names: dict[str, str]
) -> Schedule:
    """``trial``'s spans from its ``hp/`` ``curves`` (metric -> [(step, value)]); ``names``
    maps Tune trial ids to run names (for the donors of its clones).

    Every member takes the same optimizer steps per epoch (validation makes sure), so the
    first report's step is the epoch length and a step's epoch is ``step / that``.
    """
    steps = sorted({s for points in curves.values() for s, _ in points})
    if not steps:
        return Schedule(trial)
    per_epoch = steps[0]
    by_step = {name: dict(points) for name, points in curves.items()}
    clones = _clone_epochs(trial, names)
    spans: list[Span] = []
    for step in steps:
        epoch = max(1, round(step / per_epoch))
        values = {
            name[len(IN_FORCE_PREFIX) :]: by_step[name][step]
            for name in sorted(by_step)
            if step in by_step[name]
        }
        donor = clones.get(epoch - 1)
        if spans and spans[-1].values == values and donor is None:
            spans[-1].last = epoch
        else:
            spans.append(Span(epoch, epoch, values, donor))
    return Schedule(trial, spans)


def _clone_epochs(trial: Trial, names: dict[str, str]) -> dict[int, str]:
    """Epoch of each clone this run made itself -> the donor's name. Its lineage also holds
    the clones of the members it descends from (their third item names another trial)."""
    own = trial.tags.get(TRIAL_ID)
    try:
        line: Any = json.loads(trial.tags.get(PBT_LINEAGE, "[]"))
    except ValueError:
        return {}
    out: dict[int, str] = {}
    for entry in line if isinstance(line, list) else []:
        if isinstance(entry, list) and len(entry) == 3 and entry[2] == own:
            donor, epoch = entry[0], int(entry[1])
            out[epoch] = names.get(str(donor), str(donor))
    return out


def run_names(trials: list[Trial]) -> dict[str, str]:
    """Tune trial id -> run name, from the runs' ``orch.trial_id`` tags."""
    return {t.tags[TRIAL_ID]: t.name for t in trials if t.tags.get(TRIAL_ID)}


def describe(span: Span) -> str:
    """``epochs 5-6: optim.lr=0.0249, ... (cloned from trial-3)``."""
    first, last = span.first, span.last
    epochs = f"epoch {first}" if first == last else f"epochs {first}-{last}"
    values = ", ".join(f"{k}={v:.4g}" for k, v in span.values.items())
    clone = f" (cloned from {span.cloned_from})" if span.cloned_from else ""
    return f"{epochs}: {values}{clone}"

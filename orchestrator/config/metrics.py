"""The metrics every built-in trial reports each epoch, besides its task's ``val/*`` ones.

The trial loop (:mod:`orchestrator.training.loop`) writes them; objectives are checked
against them (a test runs a real trial and compares its report with this list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: the loop's own per-epoch metrics (``train/grad_norm`` is left out of an epoch whose
#: every step was skipped by AMP)
LOOP_METRICS = (
    "train/loss",
    "train/grad_norm",
    "train/skipped_frac",
    "train/lr",
    "train/samples_per_s",
    "train/peak_mem_mb",
)


def train_metrics(components: Iterable[str]) -> list[str]:
    """The loop's metrics plus each loss component's weighted and raw value."""
    out = list(LOOP_METRICS)
    for c in components:
        out += [f"train/loss_{c}", f"train/raw_{c}"]
    return out


#: the values in force of the keys a population scheduler changes inside a run
#: (``hp/loss.weight.mse``): MLflow params are immutable, metrics have a step
IN_FORCE_PREFIX = "hp/"


def in_force_metrics(
    params: Mapping[str, Any], keys: Sequence[str], space: Mapping[str, Any]
) -> dict[str, float]:
    """``hp/<key>`` of each of ``keys`` in ``params``: a number as it is, a choice as its
    index in the ``space`` entry's list (MLflow metrics are numbers)."""
    out: dict[str, float] = {}
    for key in keys:
        if key not in params:
            continue
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            choices = list((space.get(key) or {}).get("choice") or [])
            if value not in choices:
                continue
            value = choices.index(value)
        out[IN_FORCE_PREFIX + key] = float(value)
    return out

"""The metrics every built-in trial reports each epoch, besides its task's ``val/*`` ones.

The trial loop (:mod:`orchestrator.training.loop`) writes them; objectives are checked
against them (a test runs a real trial and compares its report with this list).
"""

from __future__ import annotations

from collections.abc import Iterable

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

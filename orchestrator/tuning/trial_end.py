"""How a trial ended, kept in its folder where every later reader finds it.

Small files in ``<sweep>/ray/tune/<trial>/``:

- ``finished.json``: the trial's last report. The trial writes it *before* the report it
  knows is its last (final epoch, a stop reason), because Ray ends a trial inside the
  report a scheduler stops; the driver writes it for a trial the scheduler cut. A resumed
  sweep reports it again instead of training the trial again.
- ``scheduler_stop.json``: written by the driver's scheduler when it cuts a trial early,
  with who cut it and why (rung, value, cutoff), for MLflow's tags and the end summary.
- ``lost.json``: written by a resumed sweep's driver into the folder of a trial that
  started after Tune's last saved state and was lost with the earlier driver (Tune ran a
  new trial in its place; the folder keeps the lost one's own logs).

Plain files and no Ray import: the trial process, the Ray Train workers and the driver
share them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from orchestrator.reserved import EPOCH, STOP_DETAIL, STOP_REASON, STOPPED_BY

FINISHED_FILE = "finished.json"
DECISION_FILE = "scheduler_stop.json"
LOST_FILE = "lost.json"


def folder_of(trial: Any) -> str:
    """A Tune ``Trial``'s folder in the sweep's storage (``Trial.path``), where the trial
    process writes these files, its weights and its command log (tuning/trainable.py:
    ``trial_folder``); "" before Tune has named it."""
    return str(getattr(trial, "path", None) or "")


def ends_trial(metrics: dict[str, Any], epochs: int) -> bool:
    """Whether ``metrics`` is a trial's last report by its own account: it carries a stop
    reason, or it closes the last epoch."""
    if metrics.get(STOP_REASON):
        return True
    epoch = metrics.get(EPOCH)
    return isinstance(epoch, int | float) and epoch >= epochs


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write-then-rename: a reader never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, default=str)
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, Any]:
    """The file's object, or ``{}`` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_decision(trial_dir: str, by: str, detail: str) -> None:
    """The scheduler ``by`` cut the trial of ``trial_dir`` early, for ``detail``."""
    if trial_dir and os.path.isdir(trial_dir):
        write_json(
            os.path.join(trial_dir, DECISION_FILE),
            {STOP_REASON: "scheduler", STOPPED_BY: by, STOP_DETAIL: detail},
        )


def read_decision(trial_dir: str | None) -> dict[str, Any]:
    """The scheduler's stop of that trial (``orch.stop_reason`` ...), or ``{}``."""
    return read_json(os.path.join(trial_dir, DECISION_FILE)) if trial_dir else {}


def mark_finished(trial_dir: str | None, last: dict[str, Any]) -> None:
    """Write ``finished.json`` for a trial that ended without writing it (a scheduler cut
    it), with the scheduler's reason merged into its last report."""
    if not trial_dir or not os.path.isdir(trial_dir):
        return
    path = os.path.join(trial_dir, FINISHED_FILE)
    if not os.path.isfile(path):
        write_json(path, {**last, **read_decision(trial_dir)})

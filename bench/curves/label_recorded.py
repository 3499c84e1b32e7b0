"""Label recorded curves by how each run *ended*, so the stopping benchmark can score false
alarms and recall on real runs.

Run: python bench/curves/label_recorded.py bench/curves/rtdetr_long_recorded.jsonl [...]

Rewrites each file in place, adding ``label`` (``healthy`` / ``diverged``), ``family`` (the
reason) and ``onset`` (index of the first abnormal report) to every curve. The rule looks at
the outcome only and was written before any policy was scored on these curves; it does not
use the divergence rules' thresholds (that would grade the rules by themselves):

* ``nan``: a non-finite ``train/loss`` or objective; onset: the first one;
* ``blew_up``: the run *ends* with ``train/loss`` above twice its lowest value (it left
  its best and did not come back); onset: the first report above twice the running minimum;
* ``no_progress``: ``train/loss`` never fell below 90% of its first value; onset: report 2
  (one report to see the start, the next to see nothing happened);
* ``dead``: its last objective is below a fifth of the best last objective of its file (a
  run ending under 20% of what the best run reached never learned the task; relative, so
  it holds for any task's scale); onset: its first report;
* else ``healthy`` (family ``healthy``): a slow or middling run is a ranking question for
  the scheduler, not a divergence.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

LOSS, OBJECTIVE = "train/loss", "val/map"


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def last_objective(history: list[dict[str, Any]]) -> float | None:
    values = [r[OBJECTIVE] for r in history if _finite(r.get(OBJECTIVE))]
    return values[-1] if values else None


def label(
    history: list[dict[str, Any]], best_last: float | None = None
) -> tuple[str, str, int | None]:
    """``(label, family, onset)`` of one run's reports, oldest first; ``best_last`` is the
    best last objective of the run's set (None: no ``dead`` check)."""
    for i, report in enumerate(history):
        for key in (LOSS, OBJECTIVE):
            if key in report and not _finite(report[key]):
                return "diverged", "nan", i
    losses = [(i, r[LOSS]) for i, r in enumerate(history) if _finite(r.get(LOSS))]
    if not losses:
        return "healthy", "healthy", None
    lowest = min(v for _, v in losses)
    if losses[-1][1] > 2 * lowest:
        running = math.inf
        for i, v in losses:
            if v > 2 * running:
                return "diverged", "blew_up", i
            running = min(running, v)
    if lowest > 0.9 * losses[0][1] and len(losses) > 1:
        return "diverged", "no_progress", min(1, len(history) - 1)
    last = last_objective(history)
    if best_last is not None and last is not None and last < 0.2 * best_last:
        return "diverged", "dead", 0
    return "healthy", "healthy", None


def main(paths: list[str]) -> None:
    for path in map(Path, paths):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        counts: dict[str, int] = {}
        lasts = [v for v in (last_objective(r["history"]) for r in rows) if v is not None]
        best_last = max(lasts) if lasts else None
        for row in rows:
            row["label"], row["family"], row["onset"] = label(row["history"], best_last)
            counts[row["family"]] = counts.get(row["family"], 0) + 1
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{path}: {len(rows)} curves, {counts}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""What earlier trials of a sweep learned about memory, so later ones start where it fits.

Key: everything that decides a pass's memory besides the data (task and model config,
micro-batch, workers, precision, backend and ZeRO stage). Value: the micro-batch that ended
up fitting after OOM back-off, or ``null`` when not even a micro-batch of 1 fit. A later
trial with the same key starts at that micro-batch (same effective batch, no failed passes)
or, if nothing fits, stops before building anything. One JSON file per sweep, updated under
an exclusive lock because trials run concurrently.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.training.spec import ResolvedTrial

#: a key with this value: no micro-batch fitted
NOTHING_FITS = None


def memory_key(trial: ResolvedTrial, micro: int) -> str:
    backend = trial.backend
    parts = {
        "task": trial.config.task.model_dump(mode="json"),
        "micro": micro,
        "workers": trial.plan.workers,
        "precision": backend.mixed_precision,
        "backend": backend.kind,
        "zero_stage": backend.zero_stage if backend.kind == "deepspeed" else None,
        "offload": [backend.offload_optimizer, backend.offload_params],
        "simulated_limit": backend.simulate_oom_above,
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
            yield data
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def lookup(path: str | None, key: str) -> tuple[bool, int | None]:
    """``(known, micro)``: whether ``key`` was seen, and the micro-batch that fitted.

    A read needs no lock: :func:`record` replaces the file atomically.
    """
    if not path or not Path(path).exists():
        return False, None
    data = json.loads(Path(path).read_text())
    return (True, data[key]) if key in data else (False, None)


def record(path: str | None, key: str, micro: int | None) -> None:
    if path:
        with _locked(Path(path)) as data:
            data[key] = micro

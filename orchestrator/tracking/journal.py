"""The sweep's durable log of MLflow operations: written first, applied to MLflow later.

Every MLflow write of a sweep (create a run, log a batch of metrics, end a run, upload an
artifact, register a model) is appended here as one JSON line, flushed and fsync'd, before
anything talks to the tracking server. A background writer (:mod:`.writer`) applies the lines
in order and records how far it got in ``state.json``. So:

* a slow or unreachable server never blocks the sweep (Tune callbacks only append a line);
* nothing is lost while the server is down, nor when the driver is killed: the next writer
  (``orchestrate resume`` or ``orchestrate sync``) starts at the first line not applied;
* the journal itself says which runs a sweep has and how far each trial's curves got, so a
  resumed sweep continues its child runs instead of creating duplicates.

Runs are named by *keys* (``sweep``, ``trial:<tune trial id>``) because MLflow's run ids exist
only once a create has been applied; ``state.json`` maps keys to run ids.

Torch- and MLflow-free: imported by the CLI for ``orchestrate sync``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPS_FILE = "ops.jsonl"
STATE_FILE = "state.json"
FAILED_FILE = "failed.jsonl"
LOCK_FILE = "writer.lock"
SWEEP_KEY = "sweep"


def trial_key(trial_id: str) -> str:
    return f"trial:{trial_id}"


@dataclass
class JournalState:
    """What the writer has applied: the next op to apply and the ids MLflow gave back."""

    applied: int = 0
    experiment_id: str | None = None
    runs: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "applied": self.applied,
                "experiment_id": self.experiment_id,
                "runs": self.runs,
                "versions": self.versions,
            },
            indent=1,
        )

    @classmethod
    def load(cls, path: Path) -> JournalState:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            applied=int(data.get("applied", 0)),
            experiment_id=data.get("experiment_id"),
            runs=dict(data.get("runs", {})),
            versions=dict(data.get("versions", {})),
        )


class Journal:
    """Append-only, fsync'd JSON-lines file of operations, numbered from 0.

    Thread-safe: Tune callbacks append from the driver's main thread while the writer reads.
    Opening an existing journal re-reads it, so the run keys it created and the last step
    logged per run are known again after a restart.
    """

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / OPS_FILE
        self.fsync = fsync
        self._lock = threading.Condition()
        self._ops: list[dict[str, Any]] = []
        self.created: set[str] = set()  # run keys with a create op
        self.last_step: dict[str, int] = {}  # run key -> highest metric step logged
        self.models: set[str] = set()  # run keys with a logged model (or ``model`` artifacts)
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        op = json.loads(line)
                    except json.JSONDecodeError:
                        break  # a line cut by a kill mid-write: everything before it stands
                    self._note(op)
                    self._ops.append(op)
        self._file = self.path.open("a", encoding="utf-8")

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    def append(self, op: dict[str, Any]) -> int:
        """Write ``op`` durably; returns its sequence number."""
        line = json.dumps(op, separators=(",", ":"), default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self._note(op)
            self._ops.append(op)
            self._lock.notify_all()
            return len(self._ops) - 1

    def op(self, seq: int) -> dict[str, Any]:
        """The op numbered ``seq`` (the writer reads one at a time: no copy of a backlog)."""
        with self._lock:
            return self._ops[seq]

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until the journal holds more than ``count`` ops (or ``timeout`` s pass)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._ops) > count, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _note(self, op: dict[str, Any]) -> None:
        key = op.get("key")
        if op.get("op") == "create_run" and key:
            self.created.add(key)
        elif key and (
            op.get("op") == "logged_model"
            or (op.get("op") == "artifacts" and op.get("artifact_path") == "model")
        ):
            self.models.add(key)
        elif op.get("op") == "log_batch" and key:
            steps = [int(m[3]) for m in op.get("metrics", [])]
            if steps:
                self.last_step[key] = max(self.last_step.get(key, -1), *steps)


def iter_failed(root: Path) -> Iterator[dict[str, Any]]:
    """Ops the writer gave up on (MLflow rejected them as invalid), for ``sync`` to report."""
    path = Path(root) / FAILED_FILE
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

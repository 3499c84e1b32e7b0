"""The sweep's durable log of MLflow operations: written first, applied to MLflow later.

Every MLflow write of a sweep (create a run, log a batch of metrics, end a run, upload an
artifact, register a model) is appended here as one JSON line, flushed and fsync'd, before
anything talks to the tracking server. A background writer (:mod:`.writer`) applies the lines
in order and records how far it got in ``state.json``. So:

* a slow or unreachable server never blocks the sweep (Tune callbacks only append a line);
* nothing is lost while the server is down, nor when the driver is killed: the next writer
  (``orchestrate resume`` or ``orchestrate sync``) starts at the first line not applied;
* the journal itself says which runs a sweep has and how far each trial's curves got, so a
  resumed sweep continues its child runs instead of creating duplicates;
* a line cut by a kill mid-write costs that one op, never the ops after it (see
  :class:`Journal`).

Runs are named by *keys* (``sweep``, ``trial:<tune trial id>``) because MLflow's run ids exist
only once a create has been applied; ``state.json`` maps keys to run ids.

Torch- and MLflow-free: imported by the CLI for ``orchestrate sync``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OPS_FILE = "ops.jsonl"
STATE_FILE = "state.json"
FAILED_FILE = "failed.jsonl"
LOCK_FILE = "writer.lock"
TORN_FILE = "torn.jsonl"
SWEEP_KEY = "sweep"

log = logging.getLogger(__name__)


def trial_key(trial_id: str) -> str:
    return f"trial:{trial_id}"


@dataclass
class JournalState:
    """What the writer has applied: the next op to apply and the ids MLflow gave back.

    ``applied_start`` and ``applied_digest`` name the last applied op by its byte offset and
    content, so a journal whose lines changed beneath the count is noticed (see
    :meth:`Journal.locate_applied`).
    """

    applied: int = 0
    applied_start: int | None = None
    applied_digest: str | None = None
    experiment_id: str | None = None
    runs: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "applied": self.applied,
                "applied_start": self.applied_start,
                "applied_digest": self.applied_digest,
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
            applied_start=data.get("applied_start"),
            applied_digest=data.get("applied_digest"),
            experiment_id=data.get("experiment_id"),
            runs=dict(data.get("runs", {})),
            versions=dict(data.get("versions", {})),
        )


@dataclass(frozen=True)
class Damage:
    """Bytes of ``ops.jsonl`` that are not an op: where they start and what they hold.

    ``recovered`` is True when a whole op followed the bad bytes on the same line (a
    journal written before appends checked for a torn line glued them on) and was read.
    """

    offset: int
    length: int
    text: str
    recovered: bool = False

    def describe(self) -> str:
        what = "; the op glued after it was read" if self.recovered else ""
        return f"byte {self.offset} ({self.length} bytes){what}"


class Journal:
    """Append-only, fsync'd JSON-lines file of operations, numbered from 0.

    Thread-safe: Tune callbacks append from the driver's main thread while the writer reads.
    Opening an existing journal re-reads it, so the run keys it created and the last step
    logged per run are known again after a restart.

    Crash-safe: each op is one ``write`` of its whole line on an ``O_APPEND`` descriptor,
    under an exclusive ``flock`` that every appender (any process) takes. A line cut by a
    kill mid-write is found before the next append, moved to ``torn.jsonl`` with its byte
    offset and cut off the journal, so no op is ever glued onto it; a line that is not an op
    (damage from elsewhere) is skipped and listed in :attr:`damaged`, and reading goes on.
    """

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / OPS_FILE
        self.fsync = fsync
        self._lock = threading.Condition()
        self._ops: list[dict[str, Any]] = []
        # each op's byte offset in the file and the SHA-1 of its line (see ``mark``)
        self._marks: list[tuple[int, bytes]] = []
        # when this object appended each op (time.monotonic); 0.0 for ops read from the file
        self._appended: list[float] = []
        self.created: set[str] = set()  # run keys with a create op
        self.last_step: dict[str, int] = {}  # run key -> highest metric step logged
        self.models: set[str] = set()  # run keys with a logged model (or ``model`` artifacts)
        self.damaged: list[Damage] = []  # lines of the file that are not ops
        self.set_aside: list[Damage] = []  # torn last lines this object cut off
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        with _flocked(self._fd):
            self._set_aside_torn_tail()
            data = _read_all(self._fd)
        for offset, line in _lines(data):
            op = _as_op(line)
            skip = 0
            if op is None:
                skip, op = self._damaged_line(offset, line)
            if op is not None:
                self._note(op)
                self._ops.append(op)
                self._marks.append((offset + skip, _digest(line[skip:])))
                self._appended.append(0.0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    def append(self, op: dict[str, Any]) -> int:
        """Write ``op`` durably; returns its sequence number."""
        line = (json.dumps(op, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            with _flocked(self._fd):
                self._set_aside_torn_tail()  # another appender may have died mid-line
                start = os.fstat(self._fd).st_size
                _write_all(self._fd, line)
            if self.fsync:
                os.fsync(self._fd)
            self._note(op)
            self._ops.append(op)
            self._marks.append((start, _digest(line[:-1])))
            self._appended.append(time.monotonic())
            self._lock.notify_all()
            return len(self._ops) - 1

    def age(self, seq: int) -> float:
        """Seconds since this object appended op ``seq`` (infinite for an op it read)."""
        with self._lock:
            appended = self._appended[seq]
        return time.monotonic() - appended if appended else float("inf")

    def op(self, seq: int) -> dict[str, Any]:
        """The op numbered ``seq`` (the writer reads one at a time: no copy of a backlog)."""
        with self._lock:
            return self._ops[seq]

    def mark(self, seq: int) -> tuple[int, str]:
        """Where op ``seq`` starts in the file and a digest of its bytes (``state.json``)."""
        with self._lock:
            start, digest = self._marks[seq]
            return start, digest.hex()

    def locate_applied(self, state: JournalState) -> int | None:
        """How many of this journal's ops ``state`` has applied; None when it cannot be told.

        Normally ``state.applied``. If the op it names as the last applied one is elsewhere
        (lines vanished before it), the count follows that op. If that op was itself cut off
        as a torn line (only a journal edited by hand, or cut by a disk, applies an op and
        then loses it: a real kill cuts a line before the writer can read it), every op
        before the cut was applied and every op after it was not.
        """
        count = state.applied
        if count == 0 or state.applied_digest is None:  # or a state.json from before marks
            return count if count <= len(self) else None
        if count <= len(self) and self.mark(count - 1) == (
            state.applied_start,
            state.applied_digest,
        ):
            return count
        for seq in range(min(count, len(self)) - 1, -1, -1):
            if self.mark(seq)[1] == state.applied_digest:
                return seq + 1
        if any(torn.offset == state.applied_start for torn in iter_set_aside(self.root)):
            return sum(1 for start, _ in self._marks if start < (state.applied_start or 0))
        return None

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until the journal holds more than ``count`` ops (or ``timeout`` s pass)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._ops) > count, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _set_aside_torn_tail(self) -> None:
        """Under the file lock: cut off a last line without its newline (a kill mid-write)."""
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        start = _line_start(self._fd, size)
        tail = os.pread(self._fd, size - start, start)
        if _as_op(tail) is not None:
            # the whole op reached the file, only its newline did not: it stands
            _write_all(self._fd, b"\n")
            return
        torn = Damage(start, len(tail), tail.decode("utf-8", errors="replace"))
        with (self.root / TORN_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(torn)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(self._fd, start)
        self.set_aside.append(torn)
        log.warning(
            "%s: a line cut by a kill at %s set aside in %s",
            self.path,
            torn.describe(),
            TORN_FILE,
        )

    def _damaged_line(self, offset: int, line: bytes) -> tuple[int, dict[str, Any] | None]:
        """Record a line that is not an op; return a whole op glued after torn bytes (and
        where it starts in the line)."""
        at = line.find(_OP_START, 1)
        while at > 0:
            op = _as_op(line[at:])
            if op is not None:
                self.damaged.append(Damage(offset, at, _text(line[:at]), recovered=True))
                return at, op
            at = line.find(_OP_START, at + 1)
        self.damaged.append(Damage(offset, len(line), _text(line)))
        return 0, None

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


#: how every op line starts (``append`` writes compact JSON with ``op`` first)
_OP_START = b'{"op":'


@contextmanager
def _flocked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _line_start(fd: int, size: int) -> int:
    """Offset of the first byte after the last newline before ``size`` (0 if none)."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for each non-blank line of ``data``."""
    offset = 0
    for line in data.split(b"\n"):
        if line.strip():
            yield offset, line
        offset += len(line) + 1


def _as_op(line: bytes) -> dict[str, Any] | None:
    try:
        op = json.loads(line)
    except ValueError:  # also UnicodeDecodeError
        return None
    return op if isinstance(op, dict) and isinstance(op.get("op"), str) else None


def _digest(line: bytes) -> bytes:
    return hashlib.sha1(line, usedforsecurity=False).digest()


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def iter_set_aside(root: Path) -> Iterator[Damage]:
    """Torn lines cut off the journal so far (``torn.jsonl``), for ``sync`` to report."""
    path = Path(root) / TORN_FILE
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield Damage(**json.loads(line))


def iter_failed(root: Path) -> Iterator[dict[str, Any]]:
    """Ops the writer gave up on (MLflow rejected them as invalid), for ``sync`` to report."""
    path = Path(root) / FAILED_FILE
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

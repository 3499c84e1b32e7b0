"""The command's process: started in its own process group, tied to the trial's life,
stopped politely (SIGTERM to the group) then firmly (SIGKILL after a grace period).

Three layers make sure no training process outlives its trial: the kernel's parent-death
signal (``_exec_child.py``) for a trial process that is killed outright; ``close()`` in the
runner's ``finally`` for a trial that ends or is stopped while our code runs; and an
``atexit`` hook for an interpreter that exits with children still running. Signals go to
the whole group (``start_new_session``), so a launcher's workers (``torchrun``, DataLoader
workers) stop with it.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_WRAPPER = str(Path(__file__).with_name("_exec_child.py"))
#: processes started here and not yet closed, for the atexit hook
_LIVE: set[CommandProcess] = set()
_LIVE_LOCK = threading.Lock()


class CommandProcess:
    """One running command; its merged stdout/stderr goes to ``output_path`` and a tail.

    ``on_line`` is called from the reader thread with every output line (without newline).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        output_path: str,
        tail_lines: int = 40,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.output_path = output_path
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.on_line = on_line
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> CommandProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _WRAPPER, str(os.getpid()), "--", *self.argv],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: one signal reaches all of it
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._reader = threading.Thread(target=self._read, name="command-output", daemon=True)
        self._reader.start()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def last_lines(self) -> list[str]:
        """A copy of the output tail (the reader thread may still be appending to it)."""
        return list(self.tail)

    def poll(self) -> int | None:
        """The exit code once the command ended (negative: killed by that signal)."""
        assert self.proc is not None, "not started"
        return self.proc.poll()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.output_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.tail.append(line)
                if self.on_line is not None:
                    self.on_line(line)

    def terminate(self, grace_s: float) -> int | None:
        """SIGTERM the group, SIGKILL it after ``grace_s`` if the command still runs.

        Returns the exit code (None only if even SIGKILL did not end it within 10 s).
        """
        assert self.proc is not None, "not started"
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        self._signal_leftovers()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def close(self, grace_s: float) -> None:
        """Stop whatever is left of the command's group and release the output reader."""
        if self.proc is None:
            return
        self.terminate(grace_s)
        if self._reader is not None:
            # the pipe closes when the last process holding it exits; never wait forever
            self._reader.join(timeout=5)
        reader_done = self._reader is None or not self._reader.is_alive()
        if self.proc.stdout is not None and reader_done:
            self.proc.stdout.close()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def join_output(self, timeout_s: float) -> None:
        """Wait (bounded) until every output line the command wrote has been read."""
        if self._reader is not None:
            self._reader.join(timeout=timeout_s)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.pid, sig)

    def _signal_leftovers(self) -> None:
        # members of the group that outlived its leader (a worker the script did not reap)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _close_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        process.close(grace_s=2.0)


atexit.register(_close_all)

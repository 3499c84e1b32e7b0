"""The external command's process: stopped with a grace period, as a group, and never
left behind when the trial process dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.tasks.command.process import CommandProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _start(tmp_path: Path, code: str) -> CommandProcess:
    return CommandProcess(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=str(tmp_path),
        env=dict(os.environ),
        output_path=str(tmp_path / "output.log"),
    ).start()


def test_sigterm_ends_a_cooperative_command_at_once(tmp_path):
    proc = _start(tmp_path, "import time; print('ready', flush=True); time.sleep(60)")
    assert _wait_until(lambda: "ready" in proc.tail)
    started = time.monotonic()
    assert proc.terminate(grace_s=5) == -signal.SIGTERM
    assert time.monotonic() - started < 4  # it did not wait out the grace period
    proc.close(grace_s=1)
    assert (tmp_path / "output.log").read_text() == "ready\n"


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ready', flush=True)
        time.sleep(60)
    """
    proc = _start(tmp_path, code)
    assert _wait_until(lambda: "ready" in proc.tail)
    started = time.monotonic()
    assert proc.terminate(grace_s=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 10
    proc.close(grace_s=0)


def test_the_whole_process_group_is_stopped(tmp_path):
    # the command starts a worker of its own (torchrun, a DataLoader worker ...)
    code = """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
        print(child.pid, flush=True)
        time.sleep(60)
    """
    proc = _start(tmp_path, code)
    assert _wait_until(lambda: len(proc.tail) > 0)
    worker = int(proc.tail[0])
    assert _alive(worker)
    proc.close(grace_s=2)
    assert _wait_until(lambda: not _alive(worker), 5)


def test_a_worker_left_behind_by_a_command_that_exited_is_stopped(tmp_path):
    code = """
        import subprocess, sys
        child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
        print(child.pid, flush=True)
    """
    proc = _start(tmp_path, code)
    assert _wait_until(lambda: proc.poll() is not None)
    assert proc.poll() == 0
    worker = int(proc.tail[0])
    assert _alive(worker)
    proc.close(grace_s=2)
    assert _wait_until(lambda: not _alive(worker), 5)


def test_the_command_dies_with_a_killed_trial_process(tmp_path):
    # a stand-in for a Ray trial actor: it starts the command from a thread (as Tune runs
    # a function trainable) and is then SIGKILLed, so none of its own clean-up can run
    pid_file, ready = tmp_path / "pid", tmp_path / "ready"
    command = f"import time; open({str(ready)!r}, 'w').close(); time.sleep(60)"
    trial = f"""
        import os, sys, threading, time
        from orchestrator.tasks.command.process import CommandProcess

        def run():
            p = CommandProcess(
                [sys.executable, '-c', {command!r}],
                cwd={str(tmp_path)!r}, env=dict(os.environ),
                output_path={str(tmp_path / "out.log")!r},
            ).start()
            open({str(pid_file)!r}, 'w').write(str(p.pid))
            time.sleep(60)

        threading.Thread(target=run, daemon=True).start()
        time.sleep(60)
    """
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(trial)])
    try:
        assert _wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 30)
        pid = int(pid_file.read_text())
        # the training script itself runs (not just the launcher that sets up the signal)
        assert _wait_until(ready.exists, 30)
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_until(lambda: not _alive(pid), 5), "the command outlived its trial"
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_a_missing_program_is_an_exit_code_with_a_message(tmp_path):
    proc = CommandProcess(
        ["no-such-program-here", "--x"],
        cwd=str(tmp_path),
        env=dict(os.environ),
        output_path=str(tmp_path / "output.log"),
    ).start()
    assert _wait_until(lambda: proc.poll() is not None)
    proc.join_output(timeout_s=5)
    assert proc.poll() == 127
    assert "cannot run 'no-such-program-here'" in "\n".join(proc.tail)
    proc.close(grace_s=0)

"""Sweeps that start at once on a fresh SQLite store (issue 19, part 4).

MLflow creates a SQLite store's tables with no guard; without the lock in
``orchestrator.tracking.store_init`` three processes racing on a new ``mlflow.db`` failed with
"Online migration expected to match one row" or "duplicate column name" (measured here: two
of three processes failed in at least two of three rounds), which the journal writer
reported as "MLflow unreachable". The race itself (three processes) is
tests/integration/test_multiprocess_training.py; here, which URIs have a store file.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.tracking.store_init import sqlite_path


def test_only_sqlite_uris_have_a_store_file():
    assert sqlite_path("sqlite:////tmp/x/mlflow.db") == Path("/tmp/x/mlflow.db")
    assert sqlite_path("http://127.0.0.1:5000") is None
    assert sqlite_path("file:///tmp/mlruns") is None


def test_a_process_killed_while_creating_the_store_leaves_no_half_migrated_file(tmp_path):
    """SIGKILL at several points of a new store's creation (MLflow's migrations take a few
    seconds): the store file is whole or absent, and the next client makes or opens it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from orchestrator.tracking.store_init import open_client

    code = "import sys; from orchestrator.tracking.store_init import open_client; " \
        "open_client(sys.argv[1]); print('made', flush=True)"  # fmt: skip
    for n, after_s in enumerate((0.05, 0.3, 0.6, 1.0)):
        folder = tmp_path / str(n)
        folder.mkdir()
        store = folder / "mlflow.db"
        proc = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{store}"])
        # the kill lands while MLflow migrates: after the database file appeared
        deadline = time.monotonic() + 60
        while not any(folder.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(after_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # whatever the kill interrupted: no file, or one a client reads (never "out-of-date
        # database schema"), and a new client works on it
        client = open_client(f"sqlite:///{store}")
        assert [e.name for e in client.search_experiments()] == ["Default"]
        client.create_experiment("after-the-kill")
        assert sorted(p.name for p in folder.iterdir()) == ["mlflow.db"], list(folder.iterdir())

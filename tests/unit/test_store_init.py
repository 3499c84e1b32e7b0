"""Sweeps that start at once on a fresh SQLite store (issue 19, part 4).

MLflow creates a SQLite store's tables with no guard; without the lock in
``orchestrator.tracking.store_init`` three processes racing on a new ``mlflow.db`` failed with
"Online migration expected to match one row" or "duplicate column name" (measured here: two
of three processes failed in at least two of three rounds), which the journal writer
reported as "MLflow unreachable".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlflow import MlflowClient

from orchestrator.tracking.store_init import sqlite_path

#: one sweep's tracking start: a journal with its experiment and parent run, applied
_SWEEP = textwrap.dedent(
    """
    import sys, time
    from orchestrator.tracking.journal import Journal
    from orchestrator.tracking.writer import JournalWriter
    uri, root, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    journal = Journal(root, fsync=False)
    journal.append({"op": "experiment", "name": "race"})
    journal.append({"op": "create_run", "key": "sweep", "name": root})
    writer = JournalWriter(journal, uri)
    while time.time() < start:
        time.sleep(0.001)
    ok = writer.drain(600)  # generous: the store is made under a lock, one at a time
    print("drained" if ok else f"pending: {writer.last_error}")
    """
)


def test_sweeps_starting_together_create_a_fresh_sqlite_store_once(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    # the same instant in every process, after their (slow) imports
    start = time.time() + 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SWEEP, uri, str(tmp_path / f"s{n}" / "tracking"), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(3)
    ]
    results = [proc.communicate(timeout=900) for proc in procs]
    for out, err in results:
        assert out.strip() == "drained", err
        assert "unreachable" not in err
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("race")
    assert len(client.search_runs([exp.experiment_id])) == 3


def test_only_sqlite_uris_have_a_store_file():
    assert sqlite_path("sqlite:////tmp/x/mlflow.db") == Path("/tmp/x/mlflow.db")
    assert sqlite_path("http://127.0.0.1:5000") is None
    assert sqlite_path("file:///tmp/mlruns") is None

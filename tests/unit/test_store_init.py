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

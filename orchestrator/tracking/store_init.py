"""Open an MLflow client; a SQLite store is created under a lock, once.

MLflow creates (and migrates) a SQLite store's tables on the first client that opens it,
with no guard: two sweeps that start at once on a fresh ``mlflow.db`` both run the
migrations and one fails ("Online migration expected to match one row ...", "duplicate
column name"). Every orchestrate process opens its client here, holding an exclusive lock
on the store's folder while it does, so the second one finds the tables made.

A new store is made under a temporary name and renamed into place once its migrations
are done: a process killed while migrating (a sweep's driver, kill -9 or a lost pod)
leaves a temporary file, never a half-migrated ``mlflow.db`` that every later client
refuses ("out-of-date database schema") until ``mlflow db upgrade``.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

#: how long a client waits for another process to finish creating the store
INIT_WAIT_S = 120.0


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def open_client(uri: str, wait_s: float = INIT_WAIT_S) -> Any:
    """An ``MlflowClient`` of ``uri`` whose store exists (made here if it did not).

    Raises ``TimeoutError`` if another process holds the store's creation lock longer than
    ``wait_s`` (the caller retries, as for an unreachable server).
    """
    from mlflow import MlflowClient

    path = sqlite_path(uri)
    if path is None:
        return MlflowClient(tracking_uri=uri)
    # a lock on the folder, not a file beside the store: nothing is left in the user's cwd
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{path}: another process has been creating this MLflow store for "
                        f"over {wait_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        if not path.exists() or path.stat().st_size == 0:
            _create(path)
        return MlflowClient(tracking_uri=uri)
    finally:
        os.close(fd)  # releases the lock


def _create(path: Path) -> None:
    """Make the store at ``path`` (caller holds the folder's lock): migrated in full under
    a temporary name, then renamed into place, so ``path`` is whole or absent."""
    from mlflow import MlflowClient

    # left by a process killed while creating (only the lock holder creates)
    for stale in path.parent.glob(f".{path.name}.creating-*"):
        stale.unlink(missing_ok=True)
    temp = path.parent / f".{path.name}.creating-{os.getpid()}"
    try:
        # MLflow creates and migrates the tables when its store first opens the file
        MlflowClient(tracking_uri=f"sqlite:///{temp}").search_experiments(max_results=1)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
        Path(f"{temp}-journal").unlink(missing_ok=True)

"""Where a sweep's Optuna study is kept, so Optuna's own tools (optuna-dashboard,
``optuna.load_study``) open it: a journal file in the sweep folder by default, or the RDB
URL of ``sweep.optuna_storage`` (clusters, where the sweep folder is not shared).

The study is named after the sweep folder (unique per sweep), so one RDB holds many sweeps
and ``orchestrate resume`` continues the same study. Ray's ``OptunaSearch`` writes to it;
its pickled copy in Tune's snapshot keeps the same storage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STUDY_FILE = "optuna.journal"


def study_name(sweep_dir: Path) -> str:
    """The study of the sweep in ``sweep_dir``: the folder's name."""
    return Path(sweep_dir).resolve().name


def storage_url(configured: str | None, sweep_dir: Path) -> str:
    """What ``optuna-dashboard`` and ``optuna.load_study`` are given: ``configured`` or the
    journal file of the sweep folder."""
    return configured or str(Path(sweep_dir).resolve() / STUDY_FILE)


def open_storage(configured: str | None, sweep_dir: Path) -> Any:
    """The Optuna storage object: an ``RDBStorage`` for a URL, else the journal file."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if configured:
        return optuna.storages.RDBStorage(configured)
    return optuna.storages.JournalStorage(
        JournalFileBackend(str(Path(sweep_dir).resolve() / STUDY_FILE))
    )

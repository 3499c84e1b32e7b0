"""Check, before Ray starts, that a sweep can write its folder and its MLflow store."""

from __future__ import annotations

import tempfile
from pathlib import Path

from orchestrator.config.models import SweepConfig
from orchestrator.errors import OrchestratorError


def check_locations(config: SweepConfig) -> None:
    """Raise one line naming the key and the path when ``sweep.dir`` or a local tracking
    store (``sqlite:///``, ``file://``, a bare folder) cannot be created or written."""
    from orchestrator.tracking.uri import resolve_tracking_uri

    _writable_folder("sweep.dir", Path(config.sweep.dir).resolve())
    if not config.tracking.enabled:
        return
    key = "tracking.uri" if config.tracking.uri else "tracking.uri (unset: the default store)"
    uri = resolve_tracking_uri(config.tracking.uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not db.parent.is_dir():
            raise OrchestratorError(
                f"{key}: the folder of the SQLite store {db} does not exist, got {uri}"
            )
        _writable_folder(key, db.parent, create=False)
        if db.exists() and not db.is_file():
            raise OrchestratorError(f"{key}: the SQLite store {db} is not a file, got {uri}")
    elif uri.startswith("file://"):
        _writable_folder(key, Path(uri.removeprefix("file://")))


def _writable_folder(key: str, path: Path, create: bool = True) -> None:
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        verb = "create" if create and not path.is_dir() else "write in"
        raise OrchestratorError(
            f"{key}: cannot {verb} {path}: {exc.strerror or type(exc).__name__}"
        ) from None

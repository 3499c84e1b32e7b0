"""Where MLflow data goes, without importing MLflow."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "mlflow.db"


def resolve_tracking_uri(configured: str | None, cwd: Path | None = None) -> str:
    """File/``-o`` value, else ``$MLFLOW_TRACKING_URI``, else a SQLite store in the cwd.

    A relative SQLite path or bare directory is made absolute, so the trial processes and
    the ``mlflow ui`` command printed at the end point at the same store.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_DB}"
    base = cwd or Path.cwd()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base / uri.removeprefix("sqlite:///")).resolve())
    if "://" not in uri:
        return (base / uri).resolve().as_uri()
    return uri


def ui_command(uri: str) -> str:
    """The command that opens MLflow's UI on ``uri``."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"

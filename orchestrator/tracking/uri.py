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


#: MLflow 3's UI opens every experiment in its GenAI layout until a browser has chosen
#: "Model training" once (the experiment's kind tag alone does not switch it): links say so
RUNS_PAGE = "#/experiments/{id}/runs?workflowType=machine_learning"


def ui_command(uri: str, experiment_id: str | None = None) -> str:
    """The command that opens MLflow's UI on ``uri`` (and, with ``experiment_id``, the
    address of the experiment's runs table in the model-training layout)."""
    page = RUNS_PAGE.format(id=experiment_id) if experiment_id else ""
    if uri.startswith(("http://", "https://")):
        return f"open {uri.rstrip('/')}/{page} in a browser"
    command = f"mlflow ui --backend-store-uri {uri}"
    return f"{command}, then http://127.0.0.1:5000/{page}" if page else command

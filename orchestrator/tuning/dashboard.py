"""``orchestrate dashboard SWEEP_DIR``: optuna-dashboard on the sweep's Optuna study.

optuna-dashboard is an optional dependency (``pip install 'orchestrator[dashboard]'``); it
serves on 127.0.0.1 only, like every server this project starts. Torch- and Ray-free.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.tuning.study_storage import STUDY_FILE, storage_url

HOST = "127.0.0.1"


def sweep_storage(sweep_dir: str) -> str:
    """The study storage of the sweep in ``sweep_dir`` (its ``sweep.optuna_storage``, else
    its journal file); a clear error when the folder holds no study."""
    import yaml

    folder = Path(sweep_dir)
    resolved = folder / "sweep.yaml"
    if not resolved.is_file():
        raise OrchestratorError(
            f"{sweep_dir}: not a sweep folder (no sweep.yaml written by `orchestrate sweep`)"
        )
    configured = (
        (yaml.safe_load(resolved.read_text()) or {}).get("sweep", {}).get("optuna_storage")
    )
    if configured is None and not (folder / STUDY_FILE).is_file():
        raise OrchestratorError(
            f"{sweep_dir}: no Optuna study ({STUDY_FILE}); sweeps started before "
            "optuna-dashboard support kept it only in Ray's searcher state"
        )
    return storage_url(configured, folder)


def dashboard_command(sweep_dir: str, port: int) -> int:
    """Serve optuna-dashboard on ``127.0.0.1:port`` until Ctrl-C."""
    storage = sweep_storage(sweep_dir)
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise OrchestratorError(
            "optuna-dashboard is not installed: pip install 'orchestrator[dashboard]' "
            "(or pip install optuna-dashboard)"
        )
    from optuna_dashboard import run_server

    from orchestrator.tuning.study_storage import open_storage

    configured = None if storage.endswith(STUDY_FILE) else storage
    print(f"optuna-dashboard on http://{HOST}:{port} ({storage}); Ctrl-C stops it", flush=True)
    run_server(open_storage(configured, Path(sweep_dir)), host=HOST, port=port)
    return 0

"""Run ``orchestrate sweep`` as a user would (a subprocess) and read back what it wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.mlflow_store import migrated_store


def run_cli_sweep(
    tmp_path: Path, text: str, name: str, rc: int = 0, timeout: int = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Any]:
    """Write ``text`` as ``<name>.yaml``, sweep it into ``tmp_path`` with a SQLite MLflow
    store, check the exit code; return the process, ``summary.json`` and an MlflowClient."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    db = tmp_path / "mlflow.db"
    if not db.exists():  # an empty store, migrated once per test run (tests/conftest.py)
        shutil.copyfile(migrated_store(), db)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "sweep",
            str(path),
            "-o",
            f"sweep.dir={tmp_path / 'sweeps'}",
            "-o",
            f"tracking.uri=sqlite:///{db}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "sweeps").glob(f"{name}-*")
    summary = json.loads((sweep_dir / "summary.json").read_text())
    from mlflow import MlflowClient

    return proc, summary, MlflowClient(tracking_uri=f"sqlite:///{db}")

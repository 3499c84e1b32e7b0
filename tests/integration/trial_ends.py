"""What a user checks after a sweep, whatever ended its trials: every trial's weights are
in its MLflow run, the best is registered with alias ``best``, every trial folder has its
``finished.json``, and ``orchestrate resume`` trains none of them again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def sweep_dir_of(summary: dict[str, Any]) -> Path:
    return Path(summary["sweep_dir"])


def trial_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(d for d in (sweep_dir / "ray" / "tune").iterdir() if d.is_dir())


def assert_every_trial_kept_its_end(summary: dict[str, Any], client: Any, name: str) -> None:
    trained = [r for r in summary["trials"] if r["stop_reason"] not in ("skipped", "error")]
    assert trained, summary["trials"]
    for row in trained:
        files = {a.path for a in client.list_artifacts(row["run_id"], "model")}
        assert "model/model.pt" in files and "model/batch_plan.json" in files, (row, files)
        if row["stop_reason"] != "scheduler":
            # a trial that ended by itself (last epoch, a rule) is a loadable MLflow model
            assert "model/MLmodel" in files, (row, files)
    best = summary["best"][0]
    version = client.get_model_version_by_alias(name, "best")
    assert version.run_id == best["run_id"]
    dirs = trial_dirs(sweep_dir_of(summary))
    assert len(dirs) == len(summary["trials"])
    for d in dirs:
        mark = json.loads((d / "finished.json").read_text())
        lines = (d / "result.json").read_text().splitlines()
        # the mark is the trial's last report (the scheduler's reason merged in)
        assert mark["orch.epoch"] == json.loads(lines[-1])["orch.epoch"], d.name


def assert_resume_retrains_nothing(tmp_path: Path, summary: dict[str, Any]) -> None:
    sweep_dir = sweep_dir_of(summary)
    before = {d.name: (d / "result.json").read_text() for d in trial_dirs(sweep_dir)}
    marks = {d.name: (d / "finished.json").stat().st_mtime_ns for d in trial_dirs(sweep_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "resume", str(sweep_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = {d.name: (d / "result.json").read_text() for d in trial_dirs(sweep_dir)}
    assert after == before  # no trial reported again
    assert {d.name: (d / "finished.json").stat().st_mtime_ns for d in trial_dirs(sweep_dir)} == (
        marks
    )

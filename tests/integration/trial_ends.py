"""What a user checks after a sweep, whatever ended its trials: every trial's weights are
its MLflow run's logged model, the best is registered with alias ``best``, every trial
folder has its ``finished.json``, and ``orchestrate resume`` trains none of them again."""

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


def model_files(client: Any, run_id: str) -> tuple[str, set[str]]:
    """The id and file names of the run's logged model ``model`` (there must be one)."""
    run = client.get_run(run_id)
    (model,) = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = 'model'"
    )
    assert str(model.status) == "READY", model
    # the model is the run's output, at the step of its last values, which it carries
    # (kept checkpoints' models are outputs too, at their own steps: checkpoint_models)
    (output,) = [o for o in run.outputs.model_outputs if o.model_id == model.model_id]
    metric = min(k for k in run.data.metrics if k.startswith("val/"))
    last = max(m.step for m in client.get_metric_history(run_id, metric))
    assert output.step == last, (output.step, last)
    assert {m.key for m in model.metrics} >= {k for k in run.data.metrics if k.startswith("val/")}
    return model.model_id, {f.path for f in client.list_logged_model_artifacts(model.model_id)}


def checkpoint_models(client: Any, run_id: str) -> dict[int, Any]:
    """The run's logged models made from kept checkpoints, by epoch; each checked against
    the run itself: READY, holding the weights, an output of the run at its report's step,
    carrying exactly the ``val/`` values the run logged at that step."""
    run = client.get_run(run_id)
    models = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name LIKE 'checkpoint-epoch-%'",
    )
    metric = min(k for k in run.data.metrics if k.startswith("val/"))
    history = {m.step: m.value for m in client.get_metric_history(run_id, metric)}
    outputs = {o.model_id: o.step for o in run.outputs.model_outputs}
    by_epoch = {}
    for model in models:
        epoch = int(model.tags["orch.checkpoint_epoch"])
        assert model.name == f"checkpoint-epoch-{epoch}" and str(model.status) == "READY", model
        files = {f.path for f in client.list_logged_model_artifacts(model.model_id)}
        assert "model.pt" in files, files
        (value,) = [m for m in model.metrics if m.key == metric]
        assert outputs[model.model_id] == value.step and history[value.step] == value.value
        by_epoch[epoch] = model
    return by_epoch


def assert_every_trial_kept_its_end(
    summary: dict[str, Any], client: Any, name: str, epochs: int | None = None, keep: int = 2
) -> None:
    """Every trained trial's final weights are its run's logged model ``model``; with
    ``epochs`` (the sweep's) also: the checkpoints Tune kept (the last ``keep`` of those
    after every epoch but the last) are logged models ``checkpoint-epoch-<N>``."""
    trained = [r for r in summary["trials"] if r["stop_reason"] not in ("skipped", "error")]
    assert trained, summary["trials"]
    for row in trained:
        _, files = model_files(client, row["run_id"])
        assert "model.pt" in files and "batch_plan.json" in files, (row, files)
        if epochs is not None:
            taken = list(range(1, min(row["epochs"], epochs - 1) + 1))
            kept = sorted(checkpoint_models(client, row["run_id"]))
            assert kept == taken[-keep:], (row["trial"], row["epochs"], kept)
        if row["stop_reason"] != "scheduler":
            # a trial that ended by itself (last epoch, a rule) is a loadable MLflow model
            assert "MLmodel" in files, (row, files)
    best = summary["best"][0]
    version = client.get_model_version_by_alias(name, "best")
    assert version.run_id == best["run_id"]
    assert version.source == f"models:/{model_files(client, best['run_id'])[0]}"
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

"""Read a sweep back from MLflow: its parent run, resolved sweep file, trials and curves."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from orchestrator.compare.records import ObjectiveSpec, SweepData, Trial
from orchestrator.compare.space import parse_space, sampled_params
from orchestrator.errors import CompareError
from orchestrator.reserved import KIND

SWEEP_FILE = "sweep.yaml"
MAX_RUNS = 10_000


def open_client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``. A SQLite file that does not exist is an error: MLflow
    would silently create an empty store and every lookup would then say "not found"."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise CompareError(f"no MLflow store at {uri} (file {path} does not exist)")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def get_run(client: Any, run_id: str) -> Any:
    """The run ``run_id``, or a CompareError that names it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise CompareError(f"no MLflow run with id {run_id!r} at {client.tracking_uri}") from None


def find_parent(client: Any, experiment: str | None, sweep: str | None) -> Any:
    """The sweep's parent run: ``sweep`` (a sweep's or one of its trials' run id), else the
    newest sweep of ``experiment``."""
    if sweep:
        run = get_run(client, sweep)
        if run.data.tags.get(KIND) == "sweep":
            return run
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            return get_run(client, parent)
        raise CompareError(f"run {sweep!r} is not a sweep run nor a trial of one")
    assert experiment is not None
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise CompareError(
            f"MLflow at {client.tracking_uri}: no experiment named {experiment!r}"
            + (f"; experiments: {', '.join(names)}" if names else "")
        )
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{KIND}` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise CompareError(f"MLflow experiment {experiment!r} has no sweep runs")
    return runs[0]


def load_sweep(client: Any, parent: Any) -> SweepData:
    """The sweep of ``parent``: objectives and space from its ``sweep.yaml`` artifact, one
    :class:`Trial` per child run (seed repeats apart)."""
    run_id = parent.info.run_id
    resolved = _sweep_file(client, run_id)
    objectives = resolved.get("objective")
    objectives = objectives if isinstance(objectives, list) else [objectives]
    exp = client.get_experiment(parent.info.experiment_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=MAX_RUNS,
    )
    trials = [to_trial(r) for r in children]
    if not trials:
        raise CompareError(f"sweep run {run_id} ({parent.info.run_name}) has no trial runs")
    space = dict(resolved.get("space") or {})
    specs = parse_space(space)
    for t in trials:
        t.sampled = sampled_params(t.params, specs)
    return SweepData(
        name=str(resolved.get("name") or parent.info.run_name),
        parent_run_id=run_id,
        experiment=exp.name,
        tracking_uri=client.tracking_uri,
        objectives=[ObjectiveSpec(o["metric"], o["mode"]) for o in objectives],
        space=space,
        trials=[t for t in trials if not t.is_repeat],
        repeats=[t for t in trials if t.is_repeat],
    )


def _sweep_file(client: Any, run_id: str) -> dict[str, Any]:
    # the runner logs the resolved sweep file (every default filled in) on the parent run
    from mlflow.exceptions import MlflowException

    # MLflow draws a progress bar for every download, even of one small file
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, SWEEP_FILE, tmp)
        except (MlflowException, OSError):
            raise CompareError(
                f"sweep run {run_id} has no {SWEEP_FILE} artifact (the resolved sweep file "
                "`orchestrate sweep` logs): cannot tell its objective and space"
            ) from None
        data = yaml.safe_load(Path(local).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "objective" not in data:
        raise CompareError(f"sweep run {run_id}: {SWEEP_FILE} has no objective")
    return data


def to_trial(run: Any) -> Trial:
    """A :class:`Trial` from an MLflow run."""
    return Trial(
        run_id=run.info.run_id,
        name=run.data.tags.get("mlflow.runName") or run.info.run_name or run.info.run_id,
        status=run.info.status,
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        tags=dict(run.data.tags),
        start_ms=run.info.start_time,
        end_ms=run.info.end_time,
    )


def histories(client: Any, run_id: str, names: list[str]) -> dict[str, list[tuple[int, float]]]:
    """``metric -> [(step, value), ...]`` in step order, for the metrics the run has."""
    out: dict[str, list[tuple[int, float]]] = {}
    for name in names:
        points = client.get_metric_history(run_id, name)
        if points:
            out[name] = sorted((int(m.step), float(m.value)) for m in points)
    return out


def curve_metrics(trials: list[Trial]) -> list[str]:
    """Metrics worth a curve: the total and per-component training losses, validation
    metrics. The unweighted ``train/raw_<c>`` twins are left out to keep the page short."""
    names = {k for t in trials for k in t.metrics}
    train = sorted(n for n in names if n == "train/loss" or n.startswith("train/loss_"))
    val = sorted(n for n in names if n.startswith("val/"))
    return train + val

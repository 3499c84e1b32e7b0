"""MLflow bookkeeping of a sweep: one parent run, one nested child run per trial.

Uses ``MlflowClient`` with explicit run ids (no global "active run"), so it is safe to drive
from Ray Tune callbacks in the sweep's driver process. Trial processes never talk to MLflow.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

log = logging.getLogger(__name__)

#: Metric name prefixes logged as MLflow metrics; other result keys are Ray bookkeeping.
METRIC_PREFIXES = ("train/", "val/")


#: what a trial reports about its own batch plan, which can change while it runs (``micro:
#: auto``, OOM back-off): kept as tags, so the run shows the final values
REPORTED_TAGS = frozenset(
    {"orch.micro_batch", "orch.accum", "orch.oom_backoffs", "orch.lr_scaled"}
)


class SweepTracker:
    """Parent/child MLflow runs of one sweep."""

    def __init__(self, uri: str, experiment: str, sweep_name: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(uri)
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(experiment)
        )
        self.sweep_name = sweep_name
        self.parent_id: str | None = None
        self.trial_runs: dict[str, str] = {}

    def start_sweep(self, params: dict[str, Any], tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.sweep_name,
            tags={"orch.kind": "sweep", **tags},
        )
        self.parent_id = run.info.run_id
        self._log_params(self.parent_id, params)
        return self.parent_id

    def start_trial(self, trial_id: str, name: str, params: dict[str, Any]) -> str:
        from mlflow.entities import RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        tags = {"orch.kind": "trial", "orch.trial_id": trial_id}
        if self.parent_id:
            tags[MLFLOW_PARENT_RUN_ID] = self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        self.trial_runs[trial_id] = run_id
        self._log_params(run_id, {k: v for k, v in params.items() if not k.startswith("orch.")})
        orch = [RunTag(k, str(v)) for k, v in params.items() if k.startswith("orch.")]
        if orch:
            self.client.log_batch(run_id, tags=orch)
        return run_id

    def log_result(self, trial_id: str, result: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self.trial_runs.get(trial_id)
        if run_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in result.items()
            if k.startswith(METRIC_PREFIXES)
            and isinstance(v, int | float)
            and not isinstance(v, bool)
        ]
        tags = [
            RunTag(k, str(v))
            for k, v in result.items()
            if (k.startswith("orch.stop") or k in REPORTED_TAGS) and v is not None
        ]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def end_trial(self, trial_id: str, status: str, tags: dict[str, str]) -> None:
        run_id = self.trial_runs.get(trial_id)
        if run_id is None:
            return
        for k, v in tags.items():
            self.client.set_tag(run_id, k, v)
        self.client.set_terminated(run_id, status=status)

    def end_sweep(self, summary: dict[str, Any], status: str = "FINISHED") -> None:
        if self.parent_id is None:
            return
        for key, value in summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(float(value)):
                    self.client.log_metric(self.parent_id, key, float(value))
            elif value is not None:
                self.client.set_tag(self.parent_id, key, str(value)[:5000])
        self.client.set_terminated(self.parent_id, status=status)

    def log_artifact(self, path: str) -> None:
        if self.parent_id:
            self.client.log_artifact(self.parent_id, path)

    def log_trial_artifacts(self, trial_id: str, local_dir: str, artifact_path: str) -> bool:
        """Upload a trial's folder (its final weights) into its child run."""
        run_id = self.trial_runs.get(trial_id)
        if run_id is None:
            return False
        self.client.log_artifacts(run_id, local_dir, artifact_path)
        return True

    def register_best(self, run_id: str, trial: str, alias: str = "best") -> str:
        """Register ``runs:/<run_id>/model`` under the sweep's name and point ``alias`` at it.

        Returns the new version. The model is the trial's ``model.pt`` state dict and its
        ``batch_plan.json`` (no MLflow flavour: the task's code rebuilds the module).
        """
        from mlflow.exceptions import MlflowException

        name = self.sweep_name
        try:
            self.client.create_registered_model(
                name, description="Best trial of each orchestrator sweep of this name."
            )
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        version = self.client.create_model_version(
            name,
            source=f"runs:/{run_id}/model",
            run_id=run_id,
            tags={"orch.sweep_run_id": self.parent_id or "", "orch.trial": trial},
        )
        self.client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        # MLflow accepts at most 100 params per batch
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out

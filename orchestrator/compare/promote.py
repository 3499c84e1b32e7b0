"""``--promote RUN_ID``: point the registered model's ``best`` alias at a chosen trial.

The version points at the trial's MLflow 3 logged model (``models:/<model id>``), or, for
a sweep written before logged models, at its ``model`` run artifacts.

The sweep registers its best trial under the sweep's name (``SweepTracker.register_best``);
a person who prefers another trial (a more stable seed repeat, a faster Pareto point)
moves the alias here, with who and why kept as tags of the model version.
"""

from __future__ import annotations

import contextlib
import getpass
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.compare.load import get_run
from orchestrator.errors import CompareError
from orchestrator.reserved import PROMOTED_AT, PROMOTED_BY, PROMOTED_REASON, SWEEP_RUN_ID, TRIAL

ALIAS = "best"
MODEL_DIR = "model"
#: what makes ``model/`` a model: the trial's state dict, or an MLflow model folder
MODEL_FILES = ("model/model.pt", "model/MLmodel")


@dataclass(frozen=True)
class Promotion:
    model: str
    version: str
    run_id: str
    registered_now: bool
    previous: str | None  # the version the alias pointed at before, if any


def _logged_model_id(client: Any, run: Any) -> str | None:
    """The newest READY logged model named ``model`` that ``run`` produced, if any (sweeps
    before MLflow 3 logged models kept the weights as run artifacts instead)."""
    models = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' AND name = '{MODEL_DIR}'",
    )
    ready = [m for m in models if str(m.status) == "READY"]
    return max(ready, key=lambda m: m.creation_timestamp).model_id if ready else None


def promote(client: Any, run_id: str, reason: str, user: str | None = None) -> Promotion:
    """Set alias ``best`` of the sweep's registered model to ``run_id``'s version,
    registering the run's model first if it has none."""
    from mlflow.exceptions import MlflowException

    run = get_run(client, run_id)
    model_id = _logged_model_id(client, run)
    source = f"models:/{model_id}" if model_id else f"runs:/{run_id}/{MODEL_DIR}"
    files = set() if model_id else {a.path for a in client.list_artifacts(run_id, MODEL_DIR)}
    if not model_id and not files.intersection(MODEL_FILES):
        raise CompareError(
            f"run {run_id} ({run.info.run_name}) has no model artifact "
            f"and no logged model ({' or '.join(MODEL_FILES)}): a trial's weights are logged "
            "when it ends"
        )
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if not parent_id:
        raise CompareError(f"run {run_id} is not a trial of a sweep (no parent run)")
    name = get_run(client, parent_id).info.run_name
    try:
        client.create_registered_model(
            name, description="Best trial of each orchestrator sweep of this name."
        )
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    previous = None
    with contextlib.suppress(MlflowException):  # no alias yet
        previous = str(client.get_model_version_by_alias(name, ALIAS).version)
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    registered_now = not found
    if found:
        version = str(max(int(v.version) for v in found))
    else:
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        # a local store resolves ``models:/<id>`` through the default tracking URI
        with _use_tracking_uri(client.tracking_uri):
            version = str(
                client.create_model_version(
                    name,
                    source=source,
                    run_id=run_id,
                    tags={SWEEP_RUN_ID: parent_id, TRIAL: run.info.run_name or ""},
                    model_id=model_id,
                ).version
            )
    client.set_registered_model_alias(name, ALIAS, version)
    who = user or getpass.getuser()
    for key, value in {
        PROMOTED_BY: who,
        PROMOTED_REASON: reason,
        PROMOTED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return Promotion(name, version, run_id, registered_now, previous)

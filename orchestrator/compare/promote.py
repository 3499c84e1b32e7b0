"""``--promote RUN_ID``: point the registered model's ``best`` alias at a chosen trial.

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


def promote(client: Any, run_id: str, reason: str, user: str | None = None) -> Promotion:
    """Set alias ``best`` of the sweep's registered model to ``run_id``'s version,
    registering the run's model first if it has none."""
    from mlflow.exceptions import MlflowException

    run = get_run(client, run_id)
    files = {a.path for a in client.list_artifacts(run_id, MODEL_DIR)}
    if not files.intersection(MODEL_FILES):
        raise CompareError(
            f"run {run_id} ({run.info.run_name}) has no model artifact "
            f"({' or '.join(MODEL_FILES)}): a trial logs its weights with its first report"
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
        version = str(
            client.create_model_version(
                name,
                source=f"runs:/{run_id}/{MODEL_DIR}",
                run_id=run_id,
                tags={SWEEP_RUN_ID: parent_id, TRIAL: run.info.run_name or ""},
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

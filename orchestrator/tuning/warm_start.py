"""``sweep.warm_start``: the finished trials of an earlier sweep, as Optuna trials.

Read from a sweep folder's ``summary.json`` or from the MLflow child runs of an experiment.
A trial joins the new study when every parameter it shares with this sweep's ``space`` holds
a value the space can take (same space or a sub-space; keys the earlier sweep searched and
this one does not are dropped) and it has a finite objective, or was stopped by a
divergence rule (then it joins as infeasible, ``orch.diverged`` = 1). Errored and skipped
trials carry no information and are left out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator.config.models import ParamSpec, SweepConfig
from orchestrator.config.values import parse_logged, value_problem
from orchestrator.errors import ConfigError
from orchestrator.reserved import DIVERGED, PHASE, STOP_REASON, WARM_START

#: stop reasons that are not divergence rules
_NOT_DIVERGENCE = {"", "skipped", "error", "scheduler"}


def warm_trials(config: SweepConfig, tracking_uri: str | None = None) -> tuple[list[Any], int]:
    """``(optuna FrozenTrials, how many earlier trials were left out)``."""
    source = config.sweep.warm_start
    if source is None:
        return [], 0
    if source.sweep_dir is not None:
        rows = _rows_from_sweep_dir(Path(source.sweep_dir))
    else:
        assert source.experiment is not None
        rows = _rows_from_mlflow(source.experiment, tracking_uri, config.space)
    trials = []
    for row in rows:
        trial = _to_trial(config, row)
        if trial is not None:
            trials.append(trial)
    return trials, len(rows) - len(trials)


def _rows_from_sweep_dir(path: Path) -> list[dict[str, Any]]:
    summary = path / "summary.json"
    if not summary.is_file():
        raise ConfigError(
            "not a finished sweep folder (no summary.json)",
            key="sweep.warm_start.sweep_dir",
            value=str(path),
            has_value=True,
        )
    data = json.loads(summary.read_text())
    return [
        {
            "params": row.get("params", {}),
            "metrics": row.get("metrics", {}),
            "stop_reason": row.get("stop_reason", ""),
            "status": row.get("status", ""),
        }
        for row in data.get("trials", [])
    ]


def _rows_from_mlflow(
    experiment: str, uri: str | None, space: dict[str, ParamSpec]
) -> list[dict[str, Any]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(
            f"no MLflow experiment of this name at {uri}",
            key="sweep.warm_start.experiment",
            value=experiment,
            has_value=True,
        )
    rows = []
    for run in client.search_runs(
        [found.experiment_id], filter_string="tags.mlflow.parentRunId != ''", max_results=50_000
    ):
        if run.data.tags.get(PHASE) == "repeat":
            continue
        params = {k: parse_logged(space[k], v) for k, v in run.data.params.items() if k in space}
        status = "error" if run.info.status == "FAILED" else "done"
        rows.append(
            {
                "params": params,
                "metrics": dict(run.data.metrics),
                "stop_reason": run.data.tags.get(STOP_REASON, ""),
                "status": status,
            }
        )
    return rows


def _to_trial(config: SweepConfig, row: dict[str, Any]) -> Any:
    import optuna

    from orchestrator.search_space.space import distribution

    if row["status"] == "error" or row["stop_reason"] in ("skipped", "error"):
        return None
    params = {k: v for k, v in row["params"].items() if k in config.space}
    if not params or any(value_problem(config.space[k], v) for k, v in params.items()):
        return None
    diverged = row["stop_reason"] not in _NOT_DIVERGENCE
    values: list[Any] | None = [row["metrics"].get(o.metric) for o in config.objectives]
    finite = all(isinstance(v, int | float) and math.isfinite(v) for v in values or [])
    if not finite and not diverged:
        return None
    system_attrs = {}
    if config.sweep.divergence_as == "constraint":
        system_attrs[f"constraints:{DIVERGED}"] = 1.0 if diverged else 0.0
    state = optuna.trial.TrialState.COMPLETE
    if not finite:
        # a diverged trial without a finite value: the sampler sees it as pruned
        state, values = optuna.trial.TrialState.PRUNED, None
    elif diverged and not (
        config.sweep.divergence_as == "constraint" and config.sweep.sampler.reads_constraints
    ):
        state, values = optuna.trial.TrialState.PRUNED, None
    return optuna.trial.create_trial(
        params=params,
        distributions={k: distribution(config.space[k]) for k in params},
        values=values,
        state=state,
        system_attrs=system_attrs,
        user_attrs={WARM_START: True},
    )

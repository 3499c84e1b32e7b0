"""A small sweep written straight into an MLflow store, the way ``orchestrate sweep`` lays it
out (parent run + ``sweep.yaml`` artifact, one child run per trial, stop tags, model
artifacts, seed repeats), so ``orchestrate compare`` can be tested without training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config.models import ParamSpec

SPACE = {
    "loss.cls": {"choice": ["vfl", "ce"]},
    "loss.ce.bg_weight": {"float": [1.0e-4, 1.0], "log": True, "when": {"loss.cls": ["ce"]}},
    "optim.lr": {"float": [1.0e-4, 1.0e-2], "log": True},
    "batch.effective": {"choice": [8, 16]},
}


@dataclass
class TrialSpec:
    """One trial: its sampled parameters, final objective values and how it ended."""

    name: str
    params: dict[str, Any]
    val_map: float
    speed: float = 100.0
    stop: str = ""  # orch.stop_reason
    steps: int = 4  # reports logged (a stopped trial has fewer)
    model: bool = True
    seed: int = 0
    repeat_of: str | None = None  # name of the original trial (a seed repeat)
    extra_tags: dict[str, str] = field(default_factory=dict)


def trials_spec() -> list[TrialSpec]:
    """Eight trials: six ran to the end, one NaN stop, one spike stop; two seed repeats
    of trial-1 and two of trial-2."""

    def p(cls: str, lr: float, eff: int, bg: float = 1.0) -> dict[str, Any]:
        return {"loss.cls": cls, "loss.ce.bg_weight": bg, "optim.lr": lr, "batch.effective": eff}

    return [
        TrialSpec("trial-1", p("vfl", 1e-3, 16), 0.42, speed=80.0),
        TrialSpec("trial-2", p("ce", 3e-4, 8, bg=0.05), 0.38, speed=120.0),
        TrialSpec("trial-3", p("vfl", 5e-3, 8), 0.30, speed=130.0),
        TrialSpec("trial-4", p("ce", 1e-4, 16, bg=0.5), 0.25, speed=70.0),
        TrialSpec("trial-5", p("vfl", 2e-4, 16), 0.33, speed=60.0),
        TrialSpec("trial-6", p("ce", 2e-3, 8, bg=0.01), 0.12, speed=125.0),
        TrialSpec("trial-7", p("vfl", 9e-3, 8), 0.0, stop="nonfinite", steps=2, model=False),
        TrialSpec("trial-8", p("ce", 8e-3, 16, bg=0.2), 0.02, stop="spike", steps=3, model=False),
        TrialSpec("trial-1-seed1", p("vfl", 1e-3, 16), 0.40, seed=1, repeat_of="trial-1"),
        TrialSpec("trial-1-seed2", p("vfl", 1e-3, 16), 0.44, seed=2, repeat_of="trial-1"),
        TrialSpec("trial-2-seed1", p("ce", 3e-4, 8, bg=0.05), 0.36, seed=1, repeat_of="trial-2"),
        TrialSpec("trial-2-seed2", p("ce", 3e-4, 8, bg=0.05), 0.31, seed=2, repeat_of="trial-2"),
    ]


def write_sweep(
    uri: str, work: Path, name: str = "cmp", objectives: list[dict[str, str]] | None = None
) -> dict[str, str]:
    """Write the sweep of :func:`trials_spec` into ``uri``; returns trial name -> run id
    (and ``"parent"`` -> the sweep's run id)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(name, artifact_location=(work / "artifacts").as_uri())
    objectives = objectives or [{"metric": "val/map", "mode": "max"}]
    parent = client.create_run(exp, run_name=name, tags={"orch.kind": "sweep"})
    pid = parent.info.run_id
    resolved = work / "sweep.yaml"
    # as the runner writes it: every ParamSpec key present, unset ones null
    space = {
        k: ParamSpec.model_validate(v).model_dump(by_alias=True, mode="json")
        for k, v in SPACE.items()
    }
    resolved.write_text(
        yaml.safe_dump({"name": name, "objective": objectives, "space": space}, sort_keys=False)
    )
    client.log_artifact(pid, str(resolved))
    ids = {"parent": pid}
    weights = work / "model"
    weights.mkdir(exist_ok=True)
    (weights / "model.pt").write_bytes(b"weights")
    for i, t in enumerate(trials_spec()):
        tags = {"orch.kind": "trial", "mlflow.parentRunId": pid, **t.extra_tags}
        tags["orch.effective_batch"] = str(t.params["batch.effective"])
        tags["orch.status"] = t.stop or "completed"
        if t.stop:
            tags.update({"orch.stop_reason": t.stop, "orch.stop_detail": f"{t.stop} at step"})
        if t.repeat_of:
            tags.update(
                {
                    "orch.phase": "repeat",
                    "orch.repeat_of": ids[t.repeat_of],
                    "orch.seed": str(t.seed),
                }
            )
        start = 1_700_000_000_000 + i * 1000
        run = client.create_run(exp, run_name=t.name, start_time=start, tags=tags)
        rid = run.info.run_id
        ids[t.name] = rid
        params = {**{k: str(v) for k, v in t.params.items()}, "train.seed": str(t.seed)}
        metrics = []
        for s in range(1, t.steps + 1):
            frac = s / 4
            loss = 3.0 - 2.0 * frac * (0.5 + t.val_map)
            if t.stop == "nonfinite" and s == t.steps:
                loss = 40.0  # MLflow keeps no NaN; the last finite value before it
            if t.stop == "spike" and s == t.steps:
                loss = 25.0
            for key, value in {
                "train/loss": loss,
                "train/loss_cls": loss * 0.3,
                "train/loss_bbox": loss * 0.5,
                "train/loss_giou": loss * 0.2,
                "val/map": t.val_map * frac,
                "train/samples_per_s": t.speed,
            }.items():
                metrics.append(Metric(key, value, start + s, s * 10))
        client.log_batch(
            rid, metrics=metrics, params=[Param(k, v) for k, v in sorted(params.items())]
        )
        if t.model:
            client.log_artifacts(rid, str(weights), "model")
        status = "FAILED" if math.isnan(t.val_map) else "FINISHED"
        client.set_terminated(rid, status=status, end_time=start + 60_000 + i * 5000)
    client.set_terminated(pid)
    return ids

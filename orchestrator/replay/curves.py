"""Recorded learning curves: the JSON Lines format, and export from MLflow."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import CurvesError
from orchestrator.reserved import KIND, STEP, STOP_REASON


@dataclass
class Curve:
    """One trial's reports, oldest first.

    ``label`` (``healthy`` / ``diverged``) and ``onset`` (index of the first abnormal
    report) are known for generated or hand-labelled curves and let the replay score a
    policy; curves exported from MLflow have neither.
    """

    trial: str
    history: list[dict[str, Any]]
    label: str | None = None
    family: str | None = None
    onset: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


def split_curves(curves: list[Curve], salt: str = "") -> tuple[list[Curve], list[Curve]]:
    """``(tune, holdout)``: a fixed half of the curves to choose settings on and the other
    half to report on, by the CRC-32 of ``salt + trial name`` (stable across runs, Python
    versions and file order; a curve added later never moves another one)."""
    tune: list[Curve] = []
    holdout: list[Curve] = []
    for c in curves:
        (holdout if zlib.crc32((salt + c.trial).encode()) % 2 else tune).append(c)
    return tune, holdout


def load_curves(path: str | Path) -> list[Curve]:
    """Curves from a JSON Lines file: one ``{"trial", "history", ...}`` object per line.

    Errors name the file, the line and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise CurvesError(f"{path}: no such curves file")
    curves = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)  # NaN / Infinity are accepted, as json.dumps writes them
            except json.JSONDecodeError as exc:
                raise CurvesError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            curves.append(_curve(obj, f"{path}:{n}"))
    if not curves:
        raise CurvesError(f"{path}: no curves in the file")
    return curves


def _curve(obj: Any, where: str) -> Curve:
    if not isinstance(obj, dict):
        raise CurvesError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
    history = obj.get("history")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise CurvesError(f"{where}: history must be a list of report objects")
    if not history:
        raise CurvesError(f"{where}: history is empty")
    label = obj.get("label")
    if label not in (None, "healthy", "diverged"):
        raise CurvesError(f"{where}: label must be healthy|diverged|null, got {label!r}")
    onset = obj.get("onset")
    if onset is not None and not (isinstance(onset, int) and 0 <= onset < len(history)):
        raise CurvesError(
            f"{where}: onset must index history (0..{len(history) - 1}), got {onset!r}"
        )
    return Curve(
        trial=str(obj.get("trial", where)),
        history=history,
        label=label,
        family=obj.get("family"),
        onset=onset,
        params=dict(obj.get("params") or {}),
    )


def write_curves(curves: Iterable[Curve], path: str | Path) -> int:
    """Write ``curves`` as JSON Lines; returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for c in curves:
            obj: dict[str, Any] = {"trial": c.trial}
            for key in ("label", "family", "onset"):
                if getattr(c, key) is not None:
                    obj[key] = getattr(c, key)
            if c.params:
                obj["params"] = c.params
            obj["history"] = c.history
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
            n += 1
    return n


def curves_from_mlflow(experiment: str, tracking_uri: str) -> list[Curve]:
    """One curve per trial (child) run of ``experiment``, in start order.

    Each report gathers the ``train/*`` and ``val/*`` values logged at one step. MLflow
    keeps no NaN: a run stopped on a NaN has its NaN only in ``orch.stop_reason``, which
    is added to its last report so the replay knows how it ended.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise CurvesError(f"MLflow at {tracking_uri}: no experiment named {experiment!r}")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{KIND}` = 'trial'",
        order_by=["attributes.start_time ASC"],
        max_results=10_000,
    )
    curves = []
    for run in runs:
        by_step: dict[int, dict[str, Any]] = {}
        for key in run.data.metrics:
            if not key.startswith(("train/", "val/")):
                continue
            for m in client.get_metric_history(run.info.run_id, key):
                by_step.setdefault(m.step, {})[key] = m.value
        if not by_step:
            continue
        history = [dict(by_step[s], **{STEP: s}) for s in sorted(by_step)]
        tags = run.data.tags
        if tags.get(STOP_REASON) == "nonfinite":
            history[-1]["train/loss"] = float("nan")
        curves.append(
            Curve(
                trial=tags.get("mlflow.runName", run.info.run_id),
                history=history,
                params=dict(run.data.params),
            )
        )
    if not curves:
        raise CurvesError(f"MLflow experiment {experiment!r} has no trial runs with metrics")
    return curves

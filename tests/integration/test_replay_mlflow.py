"""``replay --from-mlflow``: curves read back from a real MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_curves_from_mlflow_and_cli_export(tmp_path):
    from mlflow import MlflowClient

    from orchestrator.replay.curves import curves_from_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("rec")
    parent = client.create_run(exp, tags={"orch.kind": "sweep"})
    for name, losses, reason in [
        ("trial-1", [3.0, 2.0, 1.5], None),
        ("trial-2", [3.0, 9.0], "nonfinite"),
    ]:
        run = client.create_run(exp, tags={"orch.kind": "trial", "mlflow.runName": name})
        for step, loss in enumerate(losses, start=1):
            client.log_metric(run.info.run_id, "train/loss", loss, step=step * 10)
            client.log_metric(run.info.run_id, "val/map", 0.1 * step, step=step * 10)
        client.log_param(run.info.run_id, "optim.lr", "0.001")
        if reason:
            client.set_tag(run.info.run_id, "orch.stop_reason", reason)
        client.set_terminated(run.info.run_id)
    client.set_terminated(parent.info.run_id)

    curves = curves_from_mlflow("rec", uri)
    assert [c.trial for c in curves] == ["trial-1", "trial-2"]
    assert [r["train/loss"] for r in curves[0].history] == [3.0, 2.0, 1.5]
    assert [r["orch.step"] for r in curves[0].history] == [10, 20, 30]
    assert curves[0].params == {"optim.lr": "0.001"}
    # MLflow stores no NaN; the stop reason puts it back so the replay sees how it ended
    assert curves[1].history[-1]["train/loss"] != curves[1].history[-1]["train/loss"]

    out = tmp_path / "rec.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "replay",
            "--from-mlflow",
            "rec",
            "--tracking-uri",
            uri,
            "--export",
            str(out),
            "--scheduler",
            "none",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 2
    payload = json.loads(proc.stdout)
    assert f"wrote 2 curves to {out}" in proc.stderr
    rules = {p["policy"]: p for p in payload["policies"]}["rules only"]
    assert rules["stopped_by_rules"] == 1 and rules["reasons"] == {"nonfinite": 1}

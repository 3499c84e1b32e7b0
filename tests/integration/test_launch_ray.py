"""`orchestrate launch ray` against a real two-node Ray cluster (``ray start`` head with the
job server + a second node), with token authentication on: the smoke sweep runs as a Ray
job, its trials spread over both nodes, and the results are read back from MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.local_ray_cluster import LocalRayCluster

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "search_spaces/smoke.yaml"
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


@pytest.fixture(scope="module")
def cluster():
    # 3 + 2 logical CPUs: the smoke sweep's two concurrent trials hold 2 x 2.1, more than
    # the head has, so the second node must take part
    c = LocalRayCluster(head_cpus=3, worker_cpus=2)
    try:
        c.start(timeout_s=120)
        yield c
    finally:
        c.stop()


def orchestrate(
    c: LocalRayCluster, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=c.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_smoke_sweep_runs_as_a_ray_job_on_both_nodes(cluster, tmp_path):
    db = tmp_path / "mlflow.db"
    url = cluster.dashboard_url
    job_id = "smoke-launch-test"
    started = time.monotonic()
    proc = orchestrate(
        cluster,
        "launch", "ray", str(SMOKE), "--address", url, "--follow", "--job-id", job_id,
        "--tracking-uri", f"sqlite:///{db}",
        "-o", f"sweep.dir={tmp_path / 'sweeps'}",
        timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert proc.stdout.splitlines()[0] == job_id
    # --follow streamed the driver's own output: the progress table and the summary
    assert "Best trial: trial-" in proc.stdout, out[-4000:]
    assert f"job {job_id}: SUCCEEDED" in proc.stdout
    print(f"job wall time: {time.monotonic() - started:.1f}s")

    status = orchestrate(cluster, "jobs", "status", job_id, "--address", url)
    assert status.returncode == 0 and status.stdout.startswith(f"{job_id}: SUCCEEDED")
    logs = orchestrate(cluster, "jobs", "logs", job_id, "--address", url)
    assert logs.returncode == 0 and "Best trial: trial-" in logs.stdout

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("orch.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("orch.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.status == "FINISHED"
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["orch.world_size"] == "2"
        assert len(client.get_metric_history(child.info.run_id, "val/map")) == 2

    # the trials' Train workers ran on both nodes of the cluster
    actors = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "list", "actors", "--address", url,
         "--format", "json", "--detail", "--limit", "1000"],
        env=cluster.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = json.loads(actors.stdout)
    nodes = {a["node_id"] for a in rows if a.get("class_name", "").startswith("RayTrainWorker")}
    assert len(nodes) == 2, sorted({a.get("class_name") for a in rows})


def test_jobs_stop_ends_a_running_job(cluster, tmp_path):
    url = cluster.dashboard_url
    job_id = "smoke-stop-test"
    proc = orchestrate(
        cluster,
        "launch", "ray", str(SMOKE), "--address", url, "--job-id", job_id,
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "-o", f"sweep.dir={tmp_path / 'sweeps'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    stop = orchestrate(cluster, "jobs", "stop", job_id, "--address", url)
    assert stop.returncode == 0 and f"{job_id}: stop requested" in stop.stdout, stop.stderr
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        status = orchestrate(cluster, "jobs", "status", job_id, "--address", url).stdout
        if not status.startswith((f"{job_id}: PENDING", f"{job_id}: RUNNING")):
            break
        time.sleep(2)
    assert status.startswith(f"{job_id}: STOPPED"), status


def test_unknown_job_is_a_one_line_error(cluster):
    url = cluster.dashboard_url
    proc = orchestrate(cluster, "jobs", "status", "no-such-job", "--address", url)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: job no-such-job at ") and "Traceback" not in proc.stderr

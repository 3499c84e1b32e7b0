"""The smoke sweep against a real MLflow tracking server set up as in k8s/: runs in
PostgreSQL (`postgresql+psycopg2://`), artifacts proxied to S3 (moto's S3 server), the
k8s Deployment's `--allowed-hosts`. All on 127.0.0.1; the sweep itself holds no S3
credentials. Runs, metrics and an artifact are read back through the server, and checked
at the source: rows in PostgreSQL, objects in the bucket."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.local_mlflow_stack import (
    S3_ENV,
    Postgres,
    find_pg_bin,
    mlflow_server,
    moto_s3,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
BUCKET = "mlflow-artifacts"


def _k8s_allowed_hosts() -> str:
    """The --allowed-hosts value of k8s/base/mlflow.yaml, so the test proves that value."""
    docs = list(yaml.safe_load_all((ROOT / "k8s/base/mlflow.yaml").read_text()))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (arg,) = [
        a
        for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        if a.startswith("--allowed-hosts=")
    ]
    return arg.split("=", 1)[1]


def _missing() -> str | None:
    for module, package in (("psycopg2", "psycopg2-binary"), ("boto3", "boto3"),
                            ("moto.server", "moto[server]")):  # fmt: skip
        if importlib.util.find_spec(module.split(".")[0]) is None:
            return f"{package} is not installed (pip install -e '.[dev]')"
    if find_pg_bin() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or /usr/lib/postgresql"
        )
    return None


@pytest.fixture(scope="module")
def stack():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    import boto3

    work = Path(tempfile.mkdtemp(prefix="orch-mlflow-"))
    pg_bin = find_pg_bin()
    assert pg_bin is not None
    postgres = Postgres(pg_bin)
    services = []
    try:
        postgres.start()
        s3, endpoint = moto_s3(work)
        services.append(s3)
        boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs()).create_bucket(Bucket=BUCKET)
        server, url = mlflow_server(
            postgres.uri(), f"s3://{BUCKET}/mlflow", endpoint, _k8s_allowed_hosts(), work
        )
        services.append(server)
        yield {"url": url, "s3": endpoint, "postgres": postgres, "work": work}
    finally:
        for service in reversed(services):
            service.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def _boto_kwargs() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def sweep(stack):
    work = stack["work"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "sweep", str(ROOT / "search_spaces/smoke.yaml"),
         "-o", f"sweep.dir={work / 'sweeps'}", "-o", f"tracking.uri={stack['url']}",
         # one process per trial: this test is about the server stack; the smoke sweep's
         # two DDP workers are tested in test_smoke_sweep.py (about 40 s less here)
         "-o", "resources.workers=1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the end summary opens the experiment's runs table on the server (model-training view)
    assert f"open {stack['url']}/#/experiments/" in proc.stdout
    assert "runs?workflowType=machine_learning in a browser" in proc.stdout
    return proc


def test_runs_and_curves_are_read_back_through_the_server(stack, sweep):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack["url"])
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("orch.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("orch.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "train/loss")]
        assert steps == [4, 8]
    # the runs live in PostgreSQL, not in some local fallback store
    import psycopg2

    pg = stack["postgres"]
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user,
                            password=pg.password, dbname="mlflow")  # fmt: skip
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (exp.experiment_id,))
        assert cur.fetchone()[0] == 3
    conn.close()


def test_artifact_is_stored_in_s3_and_read_back(stack, sweep, tmp_path):
    import boto3
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack["url"])
    exp = client.get_experiment_by_name("smoke")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`orch.kind` = 'sweep'")
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    local = client.download_artifacts(parent.info.run_id, "sweep.yaml", str(tmp_path))
    resolved = yaml.safe_load(Path(local).read_text())
    assert resolved["name"] == "smoke" and resolved["sweep"]["num_samples"] == 2
    s3 = boto3.client("s3", endpoint_url=stack["s3"], **_boto_kwargs())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    run = parent.info.run_id
    assert any(k.startswith("mlflow/") and run in k and k.endswith("/sweep.yaml") for k in keys)
    assert any(run in k and k.endswith("/summary.json") for k in keys), keys


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("mlflow:5000", True), ("mlflow.ml-team.svc.cluster.local:5000", True),
     ("evil.example.com", False)],
)  # fmt: skip
def test_allowed_hosts_accept_service_names_only(stack, host, allowed):
    request = urllib.request.Request(
        f"{stack['url']}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == (200 if allowed else 403)

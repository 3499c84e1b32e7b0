"""Planted fake secrets do not leak, and the MLflow server of k8s/ asks for credentials.

The MLflow server runs as the cpu overlay's Deployment says (kubectl kustomize): its args,
the basic-auth app with the component's ``basic_auth.ini``, the admin user from
MLFLOW_AUTH_ADMIN_* and PostgreSQL credentials from PGUSER / PGPASSWORD only; on 127.0.0.1,
with a local artifact folder instead of S3 (tests/integration/test_mlflow_server.py covers
S3). A sweep of the ``command`` task then runs against it with the admin's password in
``tracking.uri`` (``http://admin:PASSWORD@...``) and a token rendered into the command by
``{env.ORCH_PLANTED_TOKEN}``. Every file of the sweep folder, of Ray's session folder, the
CLI's output, and every param, tag and artifact of every MLflow run is searched for both.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
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
    Postgres,
    Service,
    find_pg_bin,
    free_ports,
    http_ok,
    wait_until,
)
from tests.unit.test_command_runner import FAKE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.own_ray,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc"),
]

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "planted-mlflow-pw-51c9e2"
TOKEN = "planted-env-token-8d0b77"

SWEEP = """\
name: secrets
task:
  kind: command
  shell: true
  command: "ORCH_TOKEN={{env.ORCH_PLANTED_TOKEN}} {python} {fake} -c cfg.yml -u optimizer.lr={{optim.lr}} epoches={{train.epochs}} RTDETRCriterionv2.weight_dict.loss_giou=2.0 output_dir={{trial.work_dir}} fake.epoch_s=0.1"
  metrics: {{val/map: "test_coco_eval_bbox[0]", train/loss: train_loss}}
  poll_s: 0.1
train: {{epochs: 2}}
objective: {{metric: val/map, mode: max}}
space:
  optim.lr: {{float: [1.0e-4, 1.0e-3], log: true}}
resources: {{workers: 1, cpus_per_worker: 1}}
sweep: {{num_samples: 2, max_concurrent: 1, sampler: {{kind: random, seed: 0}}}}
stopping: {{scheduler: {{kind: none}}}}
"""  # noqa: E501


def _rendered_mlflow() -> tuple[dict, dict[str, str]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for kustomize) not on PATH")
    cmd = [kubectl, "kustomize", str(ROOT / "k8s/overlays/cpu")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    docs = list(yaml.safe_load_all(out))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    (auth,) = [v for k, v in configmaps.items() if k.startswith("mlflow-auth-config")]
    return container, auth


def _pids_of_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def server():
    pg_bin = find_pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    for module, package in (("psycopg2", "psycopg2-binary"), ("flask_wtf", "Flask-WTF")):
        if importlib.util.find_spec(module) is None:  # the basic-auth app needs Flask-WTF
            pytest.skip(f"{package} is not installed (pip install -e '.[dev]')")
    container, auth_files = _rendered_mlflow()
    work = Path(tempfile.mkdtemp(prefix="orch-auth-"))
    postgres = Postgres(pg_bin)
    service = None
    try:
        postgres.start()
        (port,) = free_ports(1)
        # the component's ini, pointed at this PostgreSQL instead of the `postgres` Service
        ini = auth_files["basic_auth.ini"].replace("postgres:5432", f"127.0.0.1:{postgres.port}")
        (work / "basic_auth.ini").write_text(ini)
        values = {"DB_HOST": "127.0.0.1", "DB_NAME": "mlflow", "S3_BUCKET": "unused"}
        args = []
        for arg in container["args"]:
            arg = re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg)
            arg = arg.replace(":5432/", f":{postgres.port}/")
            if arg.startswith("--host="):
                arg = "--host=127.0.0.1"
            elif arg.startswith("--port="):
                arg = f"--port={port}"
            elif arg.startswith("--workers="):
                arg = "--workers=1"
            elif arg.startswith("--artifacts-destination="):
                arg = f"--artifacts-destination={work / 'artifacts'}"
            args.append(arg)
        env_names = {e["name"] for e in container["env"]}
        assert {"PGUSER", "PGPASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD",
                "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= env_names  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
        env.update({
            "PGUSER": postgres.user, "PGPASSWORD": postgres.password,
            "MLFLOW_AUTH_CONFIG_PATH": str(work / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_USERNAME": "admin", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-test-signing-key",
        })  # fmt: skip
        cmd = [str(Path(sys.executable).parent / container["command"][0]),
               *container["command"][1:], *args]  # fmt: skip
        service = Service(cmd, env, work / "mlflow.log")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: http_ok(f"{url}/health"), 480, f"mlflow server at {url}")
        except TimeoutError:
            raise TimeoutError(f"mlflow server did not start:\n{service.log_tail()}") from None
        yield {"url": url, "service": service, "postgres": postgres, "work": work, "args": args}
    finally:
        if service is not None:
            service.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_the_database_password_is_on_no_command_line(server):
    assert "--app-name=basic-auth" in server["args"]
    pids = _pids_of_group(server["service"].proc.pid)
    assert pids, "the server's processes are gone"
    password = server["postgres"].password.encode()
    for pid in pids:
        assert password not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid


def test_mlflow_answers_only_with_the_secrets_credentials(server):
    api = f"{server['url']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(f"{server['url']}/health") == 200  # the kubelet's probes need no login
    assert _status(api) == 401
    assert _status(api, "admin", "wrong") == 401
    assert _status(api, "admin", ADMIN_PASSWORD) == 200


def _files_containing(root: Path, secrets: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                data = f.read()
            hits += [f"{path}: {s.decode()}" for s in secrets if s in data]
    return hits


@pytest.mark.timeout(900)
def test_planted_secrets_are_in_no_sweep_file_log_or_mlflow_record(server, tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="orch-rt-", dir="/tmp"))  # short: Unix sockets
    host = server["url"].removeprefix("http://")
    file = tmp_path / "secrets.yaml"
    file.write_text(SWEEP.format(python=sys.executable, fake=FAKE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"ORCH_PLANTED_TOKEN": TOKEN, "RAY_TMPDIR": str(ray_tmp)})
    env["RAY_raylet_start_wait_time_s"] = "120"  # a loaded machine starts Ray slowly
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "sweep", str(file),
             "-o", f"sweep.dir={tmp_path / 'sweeps'}",
             "-o", f"tracking.uri=http://admin:{ADMIN_PASSWORD}@{host}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=700,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-4000:]
        secrets = [ADMIN_PASSWORD.encode(), TOKEN.encode()]
        hits = [f"CLI output: {s.decode()}" for s in secrets if s.decode() in output]
        (sweep_dir,) = (tmp_path / "sweeps").iterdir()
        hits += _files_containing(sweep_dir, secrets)
        hits += _files_containing(ray_tmp, secrets)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    # the command ran with the token (the record names the variable instead)
    records = list(sweep_dir.rglob("command.json"))
    assert len(records) == 2 and all("{env.ORCH_PLANTED_TOKEN}" in r.read_text() for r in records)
    # any URL printed with user info has it masked (the UI link is printed without any)
    userinfo = re.findall(r"https?://[^\s/@]*@", output)
    assert set(userinfo) <= {"http://***@"}, userinfo
    assert f"http://{host}/" in output or userinfo, output[-2000:]

    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN_PASSWORD
    try:
        client = MlflowClient(server["url"])
        (experiment,) = [e for e in client.search_experiments() if e.name == "secrets"]
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 3  # the parent and two trials: the URI's credentials worked
        download = tmp_path / "artifacts"
        for run in runs:
            text = repr(run.data.params) + repr(run.data.tags)
            hits += [f"run {run.info.run_id}: {s.decode()}" for s in secrets if s.decode() in text]
            target = download / run.info.run_id
            target.mkdir(parents=True)
            client.download_artifacts(run.info.run_id, "", str(target))
        assert (download / runs[0].info.run_id).exists()
        artifacts = [p for p in download.rglob("*") if p.is_file()]
        assert any(p.name == "sweep.yaml" for p in artifacts)
        hits += _files_containing(download, secrets)
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert hits == []

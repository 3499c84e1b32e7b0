"""Throwaway services for a real MLflow tracking server on 127.0.0.1: PostgreSQL (a fresh
cluster from ``initdb`` in a temp dir), an S3-compatible store (moto's server) and
``mlflow server`` between them, configured like k8s/base/mlflow.yaml. Each is started
from its own process group and stopped by that id only."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.integration.local_ray_cluster import free_ports


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's versioned path."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as `postgres` (else `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready within {timeout_s}s")


def http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bool(response.status == 200)


class Postgres:
    """A PostgreSQL cluster on 127.0.0.1:<free port> with password (SCRAM) authentication."""

    def __init__(self, pg_bin: Path) -> None:
        self.pg_bin = pg_bin
        self.root = Path(tempfile.mkdtemp(prefix="orch-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.user = "mlflow"
        self.password = secrets.token_hex(8)
        (self.port,) = free_ports(1)
        self.run_as = _server_user()
        self.started = False

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            for path in (self.root, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            str(self.pg_bin / "initdb"),
            "-D", str(self.data),
            "-U", self.user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )
        self.started = True
        self._run(
            str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password,
            dbname="postgres",
        )  # fmt: skip
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
        conn.close()

    def uri(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/mlflow"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self._run(str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "-t", "30", "stop")  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


class Service:
    """A server process in its own session; stop() signals that process group only."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        # as k8s/base/mlflow.yaml: no job runner (seven huey processes importing MLflow,
        # which made the server take minutes to answer on a loaded 2-core machine)
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env}
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self._log_file.close()


def moto_s3(workdir: Path) -> tuple[Service, str]:
    """moto's S3 server on 127.0.0.1; returns it and its endpoint URL."""
    (port,) = free_ports(1)
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    service = Service(cmd, dict(os.environ), workdir / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{endpoint}/moto-api/"), 60, f"moto at {endpoint}")
    return service, endpoint


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def mlflow_server(
    backend_uri: str, artifacts: str, s3_endpoint: str, allowed_hosts: str, workdir: Path
) -> tuple[Service, str]:
    """``mlflow server`` with the k8s Deployment's flags; returns it and its URL."""
    (port,) = free_ports(1)
    env = {**os.environ, **S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--host=127.0.0.1", f"--port={port}", "--workers=1",
        f"--backend-store-uri={backend_uri}",
        f"--artifacts-destination={artifacts}",
        f"--allowed-hosts={allowed_hosts}",
    ]  # fmt: skip
    service = Service(cmd, env, workdir / "mlflow.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), 180, f"mlflow server at {url}")
    except TimeoutError:
        service.stop()
        raise TimeoutError(f"mlflow server did not start:\n{service.log_tail()}") from None
    return service, url

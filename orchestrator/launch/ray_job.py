"""``orchestrate launch ray`` and ``orchestrate jobs``: a sweep as a Ray job.

The sweep runs through Ray's Job Submission API (the API KubeRay's RayJob uses too): the
driver is ``python -m orchestrator.cli sweep sweep.yaml`` on the cluster's head node,
attached to the cluster with ``sweep.ray_address=auto``. The runtime environment carries the
sweep file (``working_dir``) and, by default, this checkout's ``orchestrator`` package
(``py_modules``), so the cluster runs the code you have; its other dependencies (torch,
Ray, MLflow ...) must be installed on the nodes, or named with ``--pip``.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field

import orchestrator
from orchestrator.errors import OrchestratorError
from orchestrator.reserved import SWEEP

SWEEP_NAME = "sweep.yaml"
#: job states after which nothing changes (Ray's JobStatus values)
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayLaunchOptions(BaseModel):
    """The command's arguments, checked once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_file: Path
    address: str = Field(min_length=1)
    overrides: tuple[str, ...] = ()
    tracking_uri: str | None = None
    pip: tuple[str, ...] = ()
    ship_code: bool = True
    follow: bool = False
    submission_id: str | None = None


def entrypoint(overrides: tuple[str, ...]) -> str:
    """The driver's command, run by Ray in the job's working directory."""
    args = ["python", "-m", "orchestrator.cli", "sweep", SWEEP_NAME]
    args += ["-o", "sweep.ray_address=auto"]  # join the job's cluster, never start a new Ray
    for override in overrides:
        args += ["-o", override]
    return shlex.join(args)


def runtime_env(options: RayLaunchOptions, working_dir: Path) -> dict[str, Any]:
    """The job's runtime environment: sweep file, optional code and packages, env vars."""
    env_vars = {"PYTHONUNBUFFERED": "1"}  # the progress table reaches the logs as it is drawn
    if options.tracking_uri:
        env_vars["MLFLOW_TRACKING_URI"] = options.tracking_uri
    env: dict[str, Any] = {
        "working_dir": str(working_dir),
        "env_vars": env_vars,
        "excludes": ["__pycache__", "*.pyc"],
    }
    if options.ship_code:
        env["py_modules"] = [str(Path(orchestrator.__file__).parent)]
    if options.pip:
        env["pip"] = list(options.pip)
    return env


def default_submission_id(sweep_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", sweep_name).strip("-")[:40] or "sweep"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@contextmanager
def _staged(sweep_file: Path) -> Iterator[Path]:
    """A directory holding only the sweep file: the job's ``working_dir``. Uploading the
    current directory instead would ship whatever data or checkpoints lie around."""
    with tempfile.TemporaryDirectory(prefix="orch-job-") as tmp:
        shutil.copyfile(sweep_file, Path(tmp) / SWEEP_NAME)
        yield Path(tmp)


def _client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:  # the client needs ray[default] (aiohttp, ...)
        raise OrchestratorError(
            f"the Ray job client needs Ray's dashboard packages ({exc}): "
            "pip install 'orchestrator[cluster]'"
        ) from None

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, or an auth error, with Ray's own wording
        raise OrchestratorError(f"cannot reach the Ray job server at {address}: {exc}") from None


def launch_ray(options: RayLaunchOptions, out: TextIO | None = None) -> int:
    """Validate the sweep here, submit it, print the job id; with ``follow``, stream the
    logs and return 0 only if the job succeeded."""
    from orchestrator.config import load_sweep

    out = out or sys.stdout
    # a broken file fails here in a fraction of a second, not on the cluster
    config = load_sweep(options.sweep_file, list(options.overrides))
    client = _client(options.address)
    job_id = options.submission_id or default_submission_id(config.name)
    with _staged(options.sweep_file) as working_dir:
        client.submit_job(
            entrypoint=entrypoint(options.overrides),
            runtime_env=runtime_env(options, working_dir),
            submission_id=job_id,
            metadata={SWEEP: config.name},
        )
    out.write(f"{job_id}\n")
    out.write(
        f"Submitted sweep {config.name!r} to {options.address} as job {job_id}\n"
        f"  orchestrate jobs status {job_id} --address {options.address}\n"
        f"  orchestrate jobs logs {job_id} --address {options.address} --follow\n"
        f"  orchestrate jobs stop {job_id} --address {options.address}\n"
    )
    if not options.tracking_uri:
        out.write(
            "note: no --tracking-uri: results go to the sweep file's tracking.uri, else "
            "$MLFLOW_TRACKING_URI on the head node, else a SQLite file in the job's working "
            "directory there\n"
        )
    out.flush()
    if not options.follow:
        return 0
    return follow(options.address, job_id, out)


def follow(address: str, job_id: str, out: TextIO | None = None) -> int:
    """Stream the job's logs until it ends; 0 if it succeeded, else 1."""
    out = out or sys.stdout
    client = _client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        out.write(f"\nstopped following; the job keeps running (orchestrate jobs stop {job_id})\n")
        return 130
    status = str(_status_value(client.get_job_status(job_id)))
    out.write(f"job {job_id}: {status}\n")
    return 0 if status == "SUCCEEDED" else 1


def _status_value(status: Any) -> str:
    return str(getattr(status, "value", status))


def job_status(address: str, job_id: str, out: TextIO | None = None) -> str:
    """Print and return the job's status (``PENDING``, ``RUNNING``, ``SUCCEEDED`` ...)."""
    out = out or sys.stdout
    client = _client(address)
    try:
        info = client.get_job_info(job_id)
    except RuntimeError as exc:  # Ray raises RuntimeError for an unknown id
        raise OrchestratorError(f"job {job_id} at {address}: {exc}") from None
    status = _status_value(info.status)
    line = f"{job_id}: {status}"
    if info.message:
        line += f" ({info.message})"
    out.write(line + "\n")
    return status


def job_logs(address: str, job_id: str, *, follow_logs: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if follow_logs:
        return follow(address, job_id, out)
    client = _client(address)
    try:
        out.write(client.get_job_logs(job_id))
    except RuntimeError as exc:
        raise OrchestratorError(f"job {job_id} at {address}: {exc}") from None
    return 0


def stop_job(address: str, job_id: str, out: TextIO | None = None) -> bool:
    """Ask Ray to stop the job (SIGTERM to the driver, then SIGKILL); False if it had
    already ended."""
    out = out or sys.stdout
    client = _client(address)
    try:
        stopped = bool(client.stop_job(job_id))
    except RuntimeError as exc:
        raise OrchestratorError(f"job {job_id} at {address}: {exc}") from None
    out.write(f"{job_id}: {'stop requested' if stopped else 'already finished'}\n")
    return stopped


def wait_for(address: str, job_id: str, timeout_s: float, poll_s: float = 2.0) -> str:
    """Poll until the job reaches a terminal state or ``timeout_s`` passes; the last status."""
    client = _client(address)
    deadline = time.monotonic() + timeout_s
    status = _status_value(client.get_job_status(job_id))
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(poll_s)
        status = _status_value(client.get_job_status(job_id))
    return status

"""``orchestrate launch k8s``: a kustomization directory that runs one sweep as a RayJob.

The directory holds the sweep file (as a ConfigMap generator), the RayJob and a
``kustomization.yaml``, so ``kubectl apply -k DIR`` creates both. The MLflow server and
PostgreSQL come from ``k8s/overlays/*`` and are deployed once per namespace.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import OrchestratorError
from orchestrator.launch.rayjob_manifest import MAX_NAME, SWEEP_KEY, RayJobSpec, rayjob
from orchestrator.launch.yaml_out import dump

#: ``kubectl apply`` against an unreachable API server must not hang a terminal or a test
KUBECTL_TIMEOUT_S = 120


class K8sLaunchOptions(BaseModel):
    """The command's arguments, checked once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_file: Path
    overrides: tuple[str, ...] = ()
    image: str = Field(min_length=1)
    namespace: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    workers: int = Field(1, ge=1)
    gpus: int = Field(0, ge=0)
    cpus: int = Field(4, ge=1)
    memory: str = "16Gi"
    tracking_uri: str = "http://mlflow:5000"
    out: Path | None = None
    apply: bool = False


class RenderedJob(BaseModel):
    """What was written: the RayJob's name and the directory's files (name -> text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    files: dict[str, str]


def job_name(sweep_name: str, sweep_text: str, overrides: tuple[str, ...]) -> str:
    """``sweep-<name>-<hash>``: a valid RayJob name (DNS-1035, <= 47 characters) that changes
    with the file's content, so a changed sweep is a new job rather than a clash."""
    digest = hashlib.sha256("\0".join([sweep_text, *overrides]).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", sweep_name.lower()).strip("-")
    room = MAX_NAME - len("sweep--") - len(digest)
    slug = slug[:room].rstrip("-") or "x"
    return f"sweep-{slug}-{digest}"


def render(options: K8sLaunchOptions, sweep_name: str) -> RenderedJob:
    """The kustomization directory's files for ``options``; writes nothing."""
    text = options.sweep_file.read_text(encoding="utf-8")
    name = job_name(sweep_name, text, options.overrides)
    configmap = f"{name}-sweep"
    spec = RayJobSpec(
        name=name,
        image=options.image,
        sweep_configmap=configmap,
        overrides=options.overrides,
        workers=options.workers,
        worker_cpus=options.cpus,
        worker_memory=options.memory,
        worker_gpus=options.gpus,
        tracking_uri=options.tracking_uri,
    )
    kustomization: dict[str, object] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    }
    if options.namespace:
        kustomization["namespace"] = options.namespace
    kustomization["resources"] = ["rayjob.yaml"]
    kustomization["configMapGenerator"] = [
        {
            "name": configmap,
            "files": [SWEEP_KEY],
            # the name is already content-addressed, and kustomize would not rewrite a
            # hashed name inside the RayJob (a custom resource)
            "options": {"disableNameSuffixHash": True},
        }
    ]
    header = f"# Rendered by: orchestrate launch k8s {options.sweep_file.name}\n"
    return RenderedJob(
        name=name,
        files={
            "kustomization.yaml": header + dump(kustomization),
            "rayjob.yaml": header + dump(rayjob(spec)),
            SWEEP_KEY: text,
        },
    )


def write(job: RenderedJob, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in job.files.items():
        (out / filename).write_text(text, encoding="utf-8")


def kubectl_apply(directory: Path) -> str:
    """``kubectl apply -k directory``; its output, or an error with kubectl's own message."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise OrchestratorError("--apply needs kubectl on PATH; the manifests are written")
    cmd = [kubectl, "apply", "-k", str(directory), f"--request-timeout={KUBECTL_TIMEOUT_S}s"]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise OrchestratorError(f"{shlex.join(cmd)}: no answer in {KUBECTL_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise OrchestratorError(
            f"{shlex.join(cmd)} failed (exit {proc.returncode}): "
            f"{detail[-1] if detail else 'no output'}; the manifests are in {directory}"
        )
    return proc.stdout


def follow_hint(name: str, namespace: str | None, directory: Path) -> str:
    ns = f" -n {namespace}" if namespace else ""
    rows = [
        (f"kubectl{ns} get rayjob {name} -w", "status: Initializing, Running, Complete"),
        (f"kubectl{ns} logs -f job/{name}", "the sweep's table and summary"),
        (f"kubectl{ns} port-forward svc/mlflow 5000:5000", "MLflow UI on http://127.0.0.1:5000"),
        (f"kubectl{ns} delete -k {directory}", "stop the sweep and remove the RayJob"),
    ]
    width = max(len(cmd) for cmd, _ in rows)
    return "Follow the job:\n" + "".join(f"  {cmd:<{width}}  # {why}\n" for cmd, why in rows)


def launch_k8s(options: K8sLaunchOptions, out: TextIO | None = None) -> RenderedJob:
    """Check the sweep, write the kustomization directory, apply it if asked."""
    from orchestrator.config import load_sweep

    out = out or sys.stdout
    config = load_sweep(options.sweep_file, list(options.overrides))
    res = config.resources
    if res.cpus_per_worker > options.cpus:
        raise OrchestratorError(
            f"resources.cpus_per_worker={res.cpus_per_worker:g} does not fit a worker pod of "
            f"--cpus {options.cpus}: no trial could ever be scheduled"
        )
    if res.gpus_per_worker > options.gpus:
        raise OrchestratorError(
            f"resources.gpus_per_worker={res.gpus_per_worker:g} does not fit a worker pod of "
            f"--gpus {options.gpus}: no trial could ever be scheduled"
        )
    job = render(options, config.name)
    directory = options.out or Path("k8s-jobs") / job.name
    write(job, directory)
    out.write(f"Wrote {directory}/ ({', '.join(job.files)}): RayJob {job.name}\n")
    if options.gpus and not res.gpus_per_worker:
        out.write(
            "note: the worker pods have GPUs but the sweep asks for none; add "
            "-o resources.gpus_per_worker=1 to train on them\n"
        )
    if options.apply:
        out.write(kubectl_apply(directory))
    else:
        out.write(f"Apply it with: kubectl apply -k {directory}\n")
    out.write(follow_hint(job.name, options.namespace, directory))
    return job

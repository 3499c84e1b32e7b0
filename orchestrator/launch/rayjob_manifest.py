"""The KubeRay ``RayJob`` that runs one sweep: pure data, no Kubernetes client.

``k8s/base/rayjob.yaml`` is this function's output for the base sweep (a test keeps them
equal), so ``orchestrate launch k8s`` and the kustomize base cannot drift apart.
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: where the sweep ConfigMap is mounted in the head pod, where the Ray job driver runs
CONFIG_DIR = "/config"
SWEEP_KEY = "sweep.yaml"
RAY_VERSION = "2.60.0"
#: KubeRay limits a RayJob name to 47 characters (it derives the cluster's names from it)
MAX_NAME = 47


class RayJobSpec(BaseModel):
    """What varies between sweeps; everything else is fixed by the project."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    image: str = "orchestrator"
    sweep_configmap: str
    overrides: tuple[str, ...] = ()
    workers: int = Field(1, ge=1)
    worker_cpus: int = Field(4, ge=1)
    worker_memory: str = "16Gi"
    worker_gpus: int = Field(0, ge=0)
    shm_size: str = "2Gi"
    tracking_uri: str = "http://mlflow:5000"
    ttl_seconds: int = Field(3600, ge=0)
    backoff_limit: int = Field(1, ge=0, le=10)
    active_deadline_seconds: int = Field(24 * 3600, ge=60)


def entrypoint(overrides: tuple[str, ...] = ()) -> str:
    """The job's command: the same ``orchestrate sweep`` a laptop runs, joined to the cluster.

    ``sweep.ray_address=auto`` makes the driver attach to the RayJob's cluster (Ray sets
    ``RAY_ADDRESS`` for job drivers) instead of starting a private local Ray.
    """
    args = ["orchestrate", "sweep", f"{CONFIG_DIR}/{SWEEP_KEY}", "-o", "sweep.ray_address=auto"]
    for override in overrides:
        args += ["-o", override]
    return shlex.join(args)


def _shm(size: str) -> tuple[dict[str, Any], dict[str, Any]]:
    # PyTorch data loaders and Ray's object store use /dev/shm; a container's default is 64 MiB
    volume = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}
    return volume, {"name": "dshm", "mountPath": "/dev/shm"}


def rayjob(spec: RayJobSpec) -> dict[str, Any]:
    """The RayJob manifest (``ray.io/v1``) for ``spec``."""
    shm_volume, shm_mount = _shm(spec.shm_size)
    head = {
        "name": "ray-head",
        "image": spec.image,
        "ports": [
            {"name": "gcs", "containerPort": 6379},
            {"name": "dashboard", "containerPort": 8265},
            {"name": "client", "containerPort": 10001},
        ],
        "resources": {
            "requests": {"cpu": "1", "memory": "4Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "volumeMounts": [shm_mount, {"name": "sweep", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    worker_resources: dict[str, dict[str, Any]] = {
        "requests": {"cpu": str(spec.worker_cpus), "memory": spec.worker_memory},
        "limits": {"cpu": str(spec.worker_cpus), "memory": spec.worker_memory},
    }
    worker_pod: dict[str, Any] = {
        "containers": [
            {
                "name": "ray-worker",
                "image": spec.image,
                "resources": worker_resources,
                "volumeMounts": [shm_mount],
            }
        ],
        "volumes": [shm_volume],
    }
    if spec.worker_gpus:
        for part in worker_resources.values():
            part["nvidia.com/gpu"] = spec.worker_gpus
        worker_pod["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": spec.name,
            "labels": {"app.kubernetes.io/name": "orchestrator-sweep"},
        },
        "spec": {
            "entrypoint": entrypoint(spec.overrides),
            # the driver alone talks to MLflow (trials never do), so only it needs the URI
            "runtimeEnvYAML": f"env_vars:\n  MLFLOW_TRACKING_URI: {spec.tracking_uri}\n",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": spec.ttl_seconds,
            # a retry starts a fresh cluster and a fresh sweep; more than a few hides a bug
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "authOptions": {"mode": "token"},
                "headGroupSpec": {
                    # the head schedules no trials: it hosts the driver, GCS and dashboard
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": {
                        "spec": {
                            "containers": [head],
                            "volumes": [
                                shm_volume,
                                {"name": "sweep", "configMap": {"name": spec.sweep_configmap}},
                            ],
                        }
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": spec.workers,
                        "minReplicas": spec.workers,
                        "maxReplicas": spec.workers,
                        "rayStartParams": {},
                        "template": {"spec": worker_pod},
                    }
                ],
            },
        },
    }

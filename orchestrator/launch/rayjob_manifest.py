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
#: where the durable sweeps volume (a ReadWriteMany PVC) is mounted on every Ray pod
SWEEPS_DIR = "/sweeps"
#: the image's user (launch/Dockerfile), whose home is a scratch volume on a read-only root
IMAGE_UID = 1000
IMAGE_HOME = "/home/ray"
#: the Secret whose username/password the driver sends to an MLflow server with basic auth
MLFLOW_AUTH_SECRET = "mlflow-auth"
#: pod labels the NetworkPolicies in k8s/base/networkpolicy.yaml select
RAY_POD_LABELS = {"app.kubernetes.io/name": "orchestrator-sweep"}
SUBMITTER_POD_LABELS = {"app.kubernetes.io/name": "orchestrator-sweep-submitter"}
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
    sweeps_claim: str = "sweeps"
    ttl_seconds: int = Field(3600, ge=0)
    backoff_limit: int = Field(2, ge=0, le=10)
    active_deadline_seconds: int = Field(24 * 3600, ge=60)


def entrypoint(name: str, overrides: tuple[str, ...] = ()) -> str:
    """The job's command: the same ``orchestrate sweep`` a laptop runs, joined to the cluster.

    ``sweep.ray_address=auto`` makes the driver attach to the RayJob's cluster (Ray sets
    ``RAY_ADDRESS`` for job drivers) instead of starting a private local Ray. ``--dir`` puts
    the sweep folder (journal, Tune state, summary) on the durable volume under the job's
    name, so a retried job (a new cluster after the head pod was lost) resumes that sweep.
    """
    args = ["orchestrate", "sweep", f"{CONFIG_DIR}/{SWEEP_KEY}", "--dir", f"{SWEEPS_DIR}/{name}"]
    args += ["-o", "sweep.ray_address=auto", "-o", f"sweep.dir={SWEEPS_DIR}"]
    for override in overrides:
        args += ["-o", override]
    return shlex.join(args)


def _shm(size: str) -> tuple[dict[str, Any], dict[str, Any]]:
    # PyTorch data loaders and Ray's object store use /dev/shm; a container's default is 64 MiB
    volume = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}
    return volume, {"name": "dshm", "mountPath": "/dev/shm"}


def pod_security(uid: int) -> dict[str, Any]:
    """The pod-level securityContext every pod of the project runs with."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """The container-level securityContext: no privilege, no capability, read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def _scratch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # the writable places on a read-only root: Ray's session dir and sockets under /tmp,
    # and $HOME (caches of torch, matplotlib, pip)
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "home", "emptyDir": {}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "home", "mountPath": IMAGE_HOME}]
    return volumes, mounts


def _mlflow_auth_env() -> list[dict[str, Any]]:
    # optional: without the Secret (an MLflow server without auth) the variables are unset
    return [
        {
            "name": var,
            "valueFrom": {
                "secretKeyRef": {"name": MLFLOW_AUTH_SECRET, "key": key, "optional": True}
            },
        }
        for var, key in (
            ("MLFLOW_TRACKING_USERNAME", "username"),
            ("MLFLOW_TRACKING_PASSWORD", "password"),
        )
    ]


def rayjob(spec: RayJobSpec) -> dict[str, Any]:
    """The RayJob manifest (``ray.io/v1``) for ``spec``."""
    shm_volume, shm_mount = _shm(spec.shm_size)
    scratch_volumes, scratch_mounts = _scratch()
    sweeps_volume = {
        "name": "sweeps",
        "persistentVolumeClaim": {"claimName": spec.sweeps_claim},
    }
    # every Ray pod: Tune's trials write their results and checkpoints to the sweep folder
    sweeps_mount = {"name": "sweeps", "mountPath": SWEEPS_DIR}
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
        # only the driver talks to MLflow (trials never do)
        "env": _mlflow_auth_env(),
        "securityContext": container_security(),
        "volumeMounts": [
            shm_mount,
            *scratch_mounts,
            sweeps_mount,
            {"name": "sweep", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    worker_resources: dict[str, dict[str, Any]] = {
        "requests": {"cpu": str(spec.worker_cpus), "memory": spec.worker_memory},
        "limits": {"cpu": str(spec.worker_cpus), "memory": spec.worker_memory},
    }
    worker_pod: dict[str, Any] = {
        "securityContext": pod_security(IMAGE_UID),
        "containers": [
            {
                "name": "ray-worker",
                "image": spec.image,
                "resources": worker_resources,
                "securityContext": container_security(),
                "volumeMounts": [shm_mount, *scratch_mounts, sweeps_mount],
            }
        ],
        "volumes": [shm_volume, *scratch_volumes, sweeps_volume],
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
            "entrypoint": entrypoint(spec.name, spec.overrides),
            # the driver alone talks to MLflow (trials never do), so only it needs the URI
            "runtimeEnvYAML": f"env_vars:\n  MLFLOW_TRACKING_URI: {spec.tracking_uri}\n",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": spec.ttl_seconds,
            # a retry starts a fresh cluster, whose driver resumes the sweep from the volume;
            # more than a few retries hides a bug
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "submitterPodTemplate": _submitter(spec.image),
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "authOptions": {"mode": "token"},
                "headGroupSpec": {
                    # the head schedules no trials: it hosts the driver, GCS and dashboard
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": {
                        "metadata": {"labels": {**RAY_POD_LABELS, "orchestrator/node": "head"}},
                        "spec": {
                            "securityContext": pod_security(IMAGE_UID),
                            "containers": [head],
                            "volumes": [
                                shm_volume,
                                *scratch_volumes,
                                sweeps_volume,
                                {"name": "sweep", "configMap": {"name": spec.sweep_configmap}},
                            ],
                        },
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": spec.workers,
                        "minReplicas": spec.workers,
                        "maxReplicas": spec.workers,
                        "rayStartParams": {},
                        "template": {
                            "metadata": {
                                "labels": {**RAY_POD_LABELS, "orchestrator/node": "worker"}
                            },
                            "spec": worker_pod,
                        },
                    }
                ],
            },
        },
    }


def _submitter(image: str) -> dict[str, Any]:
    """The pod that runs ``ray job submit``: KubeRay's own (no command: KubeRay sets it and
    its environment), made non-root and labelled for the NetworkPolicies. Its command checks
    ``ray job status`` first, so a restarted submitter follows the running job."""
    return {
        "metadata": {"labels": dict(SUBMITTER_POD_LABELS)},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": pod_security(IMAGE_UID),
            "containers": [
                {
                    "name": "ray-job-submitter",
                    "image": image,
                    "resources": {
                        "requests": {"cpu": "200m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                    "securityContext": container_security(),
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "home", "mountPath": IMAGE_HOME},
                    ],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "home", "emptyDir": {}}],
        },
    }

"""The ``launch`` and ``jobs`` subcommands: argument parsing and dispatch only. Imported at
CLI start-up, so it imports nothing heavy; the work lives in ``ray_job`` and ``k8s``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orchestrator.cli_args import add_sweep_file


def _overrides(p: argparse.ArgumentParser) -> None:
    add_sweep_file(p, "override a key of the sweep file, applied on the cluster too (repeatable)")


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        required=True,
        help="the Ray dashboard / job server, e.g. http://head:8265",
    )


def add_parsers(sub: Any) -> None:
    """Add ``launch ray``, ``launch k8s`` and ``jobs status|logs|stop`` to ``sub``."""
    launch = sub.add_parser("launch", help="run a sweep on a Ray cluster or on Kubernetes")
    where = launch.add_subparsers(dest="target", required=True)

    ray = where.add_parser(
        "ray",
        help="submit the sweep as a Ray job (Ray Job Submission API)",
        description="Submit the sweep to a running Ray cluster as a Ray job and print the "
        "job id. The sweep file and this checkout's orchestrator package travel in the "
        "job's runtime environment; the nodes need the other dependencies installed.",
    )
    _overrides(ray)
    _address(ray)
    ray.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    ray.add_argument(
        "--tracking-uri",
        help="MLflow URI the sweep writes to, as seen from the head node "
        "(e.g. http://mlflow:5000)",
    )
    ray.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="REQ",
        help="pip requirement to install for the job (repeatable)",
    )
    ray.add_argument(
        "--no-ship-code",
        action="store_true",
        help="use the orchestrator installed on the nodes instead of this checkout's",
    )
    ray.add_argument("--job-id", help="submission id (default: <sweep name>-<time>-<random>)")

    k8s = where.add_parser(
        "k8s",
        help="render (and apply) a KubeRay RayJob for the sweep",
        description="Write a kustomization directory (sweep ConfigMap + KubeRay RayJob) that "
        "runs the sweep; apply it with kubectl apply -k, or pass --apply.",
    )
    _overrides(k8s)
    k8s.add_argument("--image", required=True, help="container image with orchestrator")
    k8s.add_argument("--namespace", help="Kubernetes namespace (default: kubectl's current)")
    k8s.add_argument("--workers", type=_count(1), default=1, help="Ray worker pods (default 1)")
    k8s.add_argument("--gpus", type=_count(0), default=0, help="GPUs per worker pod (default 0)")
    k8s.add_argument("--cpus", type=_count(1), default=4, help="CPUs per worker pod (default 4)")
    k8s.add_argument("--memory", default="16Gi", help="memory per worker pod (default 16Gi)")
    k8s.add_argument(
        "--tracking-uri",
        default="http://mlflow:5000",
        help="MLflow URI for the sweep (default: the k8s/ MLflow Service, http://mlflow:5000)",
    )
    k8s.add_argument("--out", help="directory to write (default: k8s-jobs/<job name>)")
    k8s.add_argument("--apply", action="store_true", help="run kubectl apply -k on it")

    jobs = sub.add_parser("jobs", help="status, logs or stop of a submitted Ray job")
    action = jobs.add_subparsers(dest="action", required=True)
    for name, text in (
        ("status", "print the job's status"),
        ("logs", "print the job's logs"),
        ("stop", "stop the job"),
    ):
        p = action.add_parser(name, help=text)
        p.add_argument("job_id", help="the id printed by orchestrate launch ray")
        _address(p)
        if name == "logs":
            p.add_argument("--follow", action="store_true", help="stream until the job ends")


def _count(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    """Run a ``launch`` or ``jobs`` command; its exit code."""
    if args.command == "jobs":
        from orchestrator.launch import ray_job

        if args.action == "status":
            status = ray_job.job_status(args.address, args.job_id)
            return 1 if status in ("FAILED", "STOPPED") else 0
        if args.action == "logs":
            return ray_job.job_logs(args.address, args.job_id, follow_logs=args.follow)
        ray_job.stop_job(args.address, args.job_id)
        return 0
    if args.target == "ray":
        from orchestrator.launch.ray_job import RayLaunchOptions, launch_ray

        return launch_ray(
            RayLaunchOptions(
                sweep_file=Path(args.file),
                address=args.address,
                overrides=tuple(args.override),
                tracking_uri=args.tracking_uri,
                pip=tuple(args.pip),
                ship_code=not args.no_ship_code,
                follow=args.follow,
                submission_id=args.job_id,
            )
        )
    from orchestrator.launch.k8s import K8sLaunchOptions, launch_k8s

    launch_k8s(
        K8sLaunchOptions(
            sweep_file=Path(args.file),
            overrides=tuple(args.override),
            image=args.image,
            namespace=args.namespace,
            workers=args.workers,
            gpus=args.gpus,
            cpus=args.cpus,
            memory=args.memory,
            tracking_uri=args.tracking_uri,
            out=Path(args.out) if args.out else None,
            apply=args.apply,
        )
    )
    return 0

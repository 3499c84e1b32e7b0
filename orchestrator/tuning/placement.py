"""Fail fast when a trial's resource request can never be placed on the Ray cluster.

Ray Tune waits forever for resources that do not exist (it prints "You asked for 8.0 CPUs
and 1.0 GPUs per trial, but the cluster only has ..." every minute), so before the first
trial the sweep compares what one trial asks for — its own process and each DDP worker —
with the cluster's nodes. Without an autoscaler an impossible request is a
:class:`~orchestrator.errors.ConfigError` naming the key, what was asked and what exists;
with one, the sweep says what it waits for and goes on.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from orchestrator.config.models import Resources, SweepConfig
from orchestrator.errors import ConfigError

log = logging.getLogger(__name__)

#: Ray counts memory in bytes; messages and the sweep file use GiB
GIB = 1024**3

#: the sweep-file key that asks for each of Ray's standard resources
_KEYS = {"CPU": "cpus_per_worker", "GPU": "gpus_per_worker", "memory": "memory_per_worker_gb"}

Bundle = dict[str, float]


@dataclass(frozen=True)
class Process:
    """One process a trial starts and what it asks Ray for."""

    who: str  # "the trial process", "worker 1" ...
    #: the sweep-file key that sets its CPUs
    cpu_key: str
    bundle: Bundle


@dataclass(frozen=True)
class Shortfall:
    """Why a trial can never be placed: the key to change and the whole sentence."""

    key: str
    rule: str


def trial_bundles(resources: Resources) -> list[Process]:
    """Every process one trial starts: the trial itself and, with ``workers > 1``, each DDP
    worker (Ray may put the workers on different nodes)."""
    from orchestrator.tuning.trainable import COORDINATOR_CPUS

    worker: Bundle = {
        "CPU": resources.cpus_per_worker,
        "GPU": resources.gpus_per_worker,
        "memory": resources.memory_per_worker_gb * GIB,
        **resources.custom_per_worker,
    }
    worker = {k: v for k, v in worker.items() if v > 0}
    if resources.workers == 1:
        if resources.trial_cpus is not None:
            return [
                Process(
                    "the trial", "resources.trial_cpus", worker | {"CPU": resources.trial_cpus}
                )
            ]
        return [Process("the trial", "resources.cpus_per_worker", worker)]
    own = Process(
        "the trial process",
        "resources.trial_cpus",
        {"CPU": resources.trial_cpus or COORDINATOR_CPUS},
    )
    workers = [
        Process(f"each of its {resources.workers} workers", "resources.cpus_per_worker", worker)
    ] * resources.workers
    return [own, *workers]


def shortfall(processes: list[Process], nodes: list[Bundle]) -> Shortfall | None:
    """The first reason ``processes`` can never all be placed at once on ``nodes`` (each
    node's total resources), or None when they fit."""
    cluster = describe_nodes(nodes)
    for p in processes:
        for name, amount in p.bundle.items():
            most = max((node.get(name, 0.0) for node in nodes), default=0.0)
            if most >= amount:
                continue
            if most == 0:
                exists = f"the Ray cluster has no {_unit(name)}"
            elif len(nodes) == 1:
                exists = f"the Ray cluster has {_amount(name, most)}"
            else:
                exists = f"its largest node has {_amount(name, most)}"
            return Shortfall(
                _key(name, p.cpu_key),
                f"{p.who} asks for {_amount(name, amount)}, but {exists} ({cluster})",
            )
        if not any(_fits(p.bundle, node) for node in nodes):
            return Shortfall(
                "resources",
                f"{p.who} asks for {_describe(p.bundle)} on one node, but no node has all of "
                f"that ({cluster})",
            )
    free = [dict(node) for node in nodes]
    # first fit, largest first: Ray places a trial's processes one by one, on any node
    for p in sorted(processes, key=lambda q: -sum(q.bundle.values())):
        node = next((n for n in free if _fits(p.bundle, n)), None)
        if node is None:
            total = _sum([q.bundle for q in processes])
            return Shortfall(
                "resources.workers",
                f"one trial's {len(processes) - 1} workers and its own process ask for "
                f"{_describe(total)} in all, but the Ray cluster has {cluster}",
            )
        for name, amount in p.bundle.items():
            node[name] = node.get(name, 0.0) - amount
    return None


def cluster_address(config: SweepConfig) -> str | None:
    """The Ray cluster the sweep joins: ``sweep.ray_address``, else ``RAY_ADDRESS`` from the
    environment (as ``ray.init()`` itself reads it: Ray sets it for the entrypoint of a
    ``ray job submit``), else None: the sweep starts a local Ray of its own."""
    import os

    return config.sweep.ray_address or os.environ.get("RAY_ADDRESS") or None


def check_placement(
    config: SweepConfig,
    out: TextIO,
    init_ray: Callable[[SweepConfig, TextIO], None],
    file: str | None = None,
) -> None:
    """Start (or join) Ray with ``init_ray`` and make sure one trial can ever be placed.

    Raises :class:`ConfigError` when it cannot and no autoscaler can add nodes; with an
    autoscaler, writes what the sweep waits for to ``out``.
    """
    import ray

    processes = trial_bundles(config.resources)
    problem = None
    joins = cluster_address(config) is not None
    if not joins and not ray.is_initialized():
        # a local Ray takes from seconds to a minute to start on a busy machine; what it
        # would have (CPUs, GPUs, no custom resources) is known before: check that first
        problem = shortfall(processes, [_local_node(config)])
    if problem is None:
        init_ray(config, out)
        nodes = [
            {k: float(v) for k, v in node["Resources"].items()}
            for node in ray.nodes()
            if node.get("Alive")
        ]
        problem = shortfall(processes, nodes)
    if problem is None:
        return
    if joins and _autoscaler_running():
        asks = {p.who: _describe(p.bundle) for p in trial_bundles(config.resources)}
        needs = "; ".join(f"{who}: {what}" for who, what in asks.items())
        if len(asks) == 1:  # a one-process trial: no need to say which process
            needs = next(iter(asks.values()))
        out.write(
            f"Waiting for the autoscaler to add nodes: {problem.key}: {problem.rule}. "
            f"Trials start once it has; one trial needs {needs}.\n"
        )
        out.flush()
        return
    where = "" if joins else " on this machine"
    raise ConfigError(
        f"{problem.rule}; no autoscaler can add nodes{where}, so no trial could ever start",
        file=file,
        key=problem.key,
    )


def describe_nodes(nodes: list[Bundle]) -> str:
    """``8 CPU, 0 GPU, 12.5 GiB memory on 1 node`` (plus custom resources)."""
    total = _sum(nodes)
    parts = [_amount("CPU", total.get("CPU", 0.0)), _amount("GPU", total.get("GPU", 0.0))]
    if "memory" in total and math.isfinite(total["memory"]):
        parts.append(_amount("memory", total["memory"]))
    parts += [
        _amount(k, v)
        for k, v in sorted(total.items())
        if k not in ("CPU", "GPU", "memory", "object_store_memory")
        and not k.startswith(("node:", "accelerator_type:"))
    ]
    return f"{', '.join(parts)} on {len(nodes)} node{'s' if len(nodes) != 1 else ''}"


def _local_node(config: SweepConfig) -> Bundle:
    """What a local Ray started for this sweep will have, as far as known before it starts:
    at least the CPUs one trial needs unless ``sweep.num_cpus`` caps them (the runner sizes
    it so), the GPUs Ray detects, memory unknown yet (checked once Ray runs)."""
    import os

    from orchestrator.tuning.trainable import cpus_per_trial

    cpus = config.sweep.num_cpus or max(
        os.cpu_count() or 1, math.ceil(cpus_per_trial(config.resources))
    )
    return {"CPU": float(cpus), "GPU": float(_local_gpus()), "memory": math.inf}


def _local_gpus() -> float:
    """GPUs a local Ray would detect (it honours ``CUDA_VISIBLE_DEVICES``); inf if unknown."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        if manager is None:
            return 0.0
        count = manager.get_current_node_num_accelerators()
        visible = manager.get_current_process_visible_accelerator_ids()
        return float(min(count, len(visible)) if visible is not None else count)
    except Exception as exc:  # Ray's private API moved: leave it to the check after start
        log.debug("could not count GPUs before starting Ray: %s", exc)
        return math.inf


def _autoscaler_running() -> bool:
    """Whether the joined cluster has an autoscaler (v2, or v1's monitor report)."""
    try:
        from ray.autoscaler.v2.utils import is_autoscaler_v2
        from ray.experimental.internal_kv import _internal_kv_get

        if is_autoscaler_v2(fetch_from_server=True):
            return True
        status = _internal_kv_get("__autoscaling_status")
        # the monitor always writes its load report; "autoscaler_report" only with one
        return bool(status) and "autoscaler_report" in json.loads(status)
    except Exception as exc:  # an older or newer Ray: assume none, and say so
        log.warning("could not tell whether the cluster has an autoscaler: %s", exc)
        return False


def _fits(bundle: Bundle, node: Bundle) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in bundle.items())


def _sum(bundles: list[Bundle]) -> Bundle:
    total: Bundle = {}
    for bundle in bundles:
        for k, v in bundle.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _key(name: str, cpu_key: str) -> str:
    if name == "CPU":
        return cpu_key
    if name in _KEYS:
        return f"resources.{_KEYS[name]}"
    return f"resources.custom_per_worker.{name}"


def _unit(name: str) -> str:
    return {"CPU": "CPUs", "GPU": "GPUs"}.get(name, name)


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / GIB:.3g} GiB memory"
    return f"{value:g} {name}"


def _describe(bundle: Bundle) -> str:
    return ", ".join(_amount(k, v) for k, v in bundle.items()) or "nothing"


__all__ = ["Shortfall", "check_placement", "describe_nodes", "shortfall", "trial_bundles"]

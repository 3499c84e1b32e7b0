"""A real two-node Ray cluster on this machine, started with ``ray start`` the way an admin
starts one: a head (GCS, dashboard, job server) and a second node that joins it at
127.0.0.1. (Ray itself registers nodes under the machine's own interface address and
binds its servers on all interfaces, as any local ``ray.init()`` does; nothing leaves
the machine.)

Every port is chosen free and the cluster lives in its own ``--temp-dir``, so it neither
collides with nor gets picked up by another Ray on the machine (``ray.init()`` looks for the
last ``ray start`` cluster under the default temp dir only).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# ports each node binds; Ray's defaults (6379, 8265, 10001, 52365 ...) could be taken
_NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)
_HEAD_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port")
_MARKER = "ORCH_TEST_RAY_CLUSTER"
_NODE_MARKER = "ORCH_TEST_RAY_NODE"


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class LocalRayCluster:
    """Start with :meth:`start`, always end with :meth:`stop` (kills only its own nodes)."""

    def __init__(
        self,
        head_cpus: int,
        worker_cpus: int | None,
        dashboard: bool = True,
        autoscaled: dict[str, dict[str, float]] | None = None,
    ) -> None:
        """``worker_cpus=None``: the head node only; ``dashboard=False``: no dashboard and
        job server (a cluster that only drivers join starts faster without them).

        ``autoscaled``: node types (name -> resources) that Ray's autoscaler may add, at
        most one node each, through its ``fake_multinode`` provider: a real autoscaler
        (Ray's monitor) whose "cloud" starts further raylets on this machine."""
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.dashboard = dashboard
        self.autoscaled = autoscaled
        # short: Ray's Unix socket paths live under it and must stay below ~107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="orch-ray-", dir="/tmp"))
        self.env = dict(os.environ)
        # `ray` and `python` in the job's entrypoint resolve to this environment
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env.pop("RAY_ADDRESS", None)
        self.env["RAY_USAGE_STATS_ENABLED"] = "0"
        # every process of this cluster (daemons, workers, job drivers) inherits this, so
        # stop() finds exactly them, even those that rename themselves (ray::IDLE ...)
        self.env[_MARKER] = str(self.temp_dir)
        # token auth, as Ray 2.60 defaults to, with this cluster's own token (never the
        # user's ~/.ray/auth_token); every client of the cluster needs self.env
        self.env["RAY_AUTH_MODE"] = "token"
        self.env["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
        ports = free_ports(len(_HEAD_PORT_FLAGS) + 2 * len(_NODE_PORT_FLAGS))
        self._head_ports = dict(zip(_HEAD_PORT_FLAGS, ports, strict=False))
        rest = ports[len(_HEAD_PORT_FLAGS) :]
        self._node_ports = [
            dict(zip(_NODE_PORT_FLAGS, rest[: len(_NODE_PORT_FLAGS)], strict=True)),
            dict(zip(_NODE_PORT_FLAGS, rest[len(_NODE_PORT_FLAGS) :], strict=True)),
        ]
        self.gcs_address = f"127.0.0.1:{self._head_ports['--port']}"
        self.dashboard_url = f"http://127.0.0.1:{self._head_ports['--dashboard-port']}"
        self.started = False

    def _ray(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> None:
        cmd = [str(Path(sys.executable).parent / "ray"), *args]
        proc = subprocess.run(
            cmd, env=env or self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            tail = proc.stdout[-2000:] + proc.stderr[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{tail}")

    def _autoscaling_config(self) -> list[str]:
        """``--autoscaling-config`` for the head, when node types can be added."""
        if not self.autoscaled:
            return []
        import json

        self.env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        types: dict[str, Any] = {
            name: {"resources": dict(resources), "node_config": {}, "min_workers": 0,
                   "max_workers": 1}
            for name, resources in self.autoscaled.items()
        }  # fmt: skip
        types["ray.head.default"] = {"resources": {}, "node_config": {}, "max_workers": 0}
        config = {
            "cluster_name": "orch-test",
            "max_workers": len(types) - 1,
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": 5,
            # no node updaters (they would ssh into the new "machine") and no launch
            # config check: the fake provider starts a raylet in-process and that is all
            "provider": {
                "type": "fake_multinode",
                "gcs_address": self.gcs_address,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
            },
            "auth": {"ssh_user": "ubuntu"},
            "available_node_types": types,
            "head_node_type": "ray.head.default",
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }
        path = self.temp_dir / "autoscaling.json"
        path.write_text(json.dumps(config))
        return [f"--autoscaling-config={path}"]

    def start(self, timeout_s: float = 120) -> None:
        self.started = True
        common = ["--disable-usage-stats"]
        head = [f"{k}={v}" for k, v in {**self._head_ports, **self._node_ports[0]}.items()]
        head += self._autoscaling_config()
        self._ray(
            "start",
            "--head",
            *common,
            *head,
            f"--num-cpus={self.head_cpus}",
            f"--include-dashboard={str(self.dashboard).lower()}",
            "--dashboard-host=127.0.0.1",
            f"--temp-dir={self.temp_dir}",
        )
        if self.worker_cpus is None:
            if self.dashboard:
                self._wait_for_job_server(timeout_s)
            return
        worker = [f"{k}={v}" for k, v in self._node_ports[1].items()]
        self._ray(
            "start",
            f"--address={self.gcs_address}",
            *common,
            *worker,
            f"--num-cpus={self.worker_cpus}",
            # its own temp dir, as on a separate machine: sharing the head's, the second
            # node's runtime-env agent deletes unpacked job packages the head still uses
            f"--temp-dir={self.temp_dir / 'w'}",
        )
        self._wait_for_job_server(timeout_s)

    def add_node(self, name: str, cpus: int) -> None:
        """Start one more node that joins the head: its own ports and temp dir, as on
        another machine, and its own marker, so :meth:`kill_node` finds its processes."""
        ports = dict(zip(_NODE_PORT_FLAGS, free_ports(len(_NODE_PORT_FLAGS)), strict=True))
        self._ray("start", f"--address={self.gcs_address}", "--disable-usage-stats",
                  *(f"{k}={v}" for k, v in ports.items()), f"--num-cpus={cpus}",
                  f"--node-name={name}", f"--temp-dir={self.temp_dir / name}",
                  env={**self.env, _NODE_MARKER: name})  # fmt: skip

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of the node :meth:`add_node` started as ``name`` (its
        raylet, agents, workers and the trials in them): a machine that vanished, as a
        preempted spot node does. Returns how many processes were killed."""
        return self._signal(signal.SIGKILL, f"{_NODE_MARKER}={name}".encode())

    def _wait_for_job_server(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=5):
                    return
            except Exception as exc:  # 401 with token auth also means "up"
                if getattr(exc, "code", None) in (401, 403):
                    return
                last = exc
            time.sleep(1)
        raise TimeoutError(f"job server {self.dashboard_url} not up in {timeout_s}s: {last}")

    def stop(self, grace_s: float = 5) -> None:
        """Stop this cluster's processes only (``ray stop`` would kill every Ray on the
        machine): SIGTERM, then SIGKILL after ``grace_s``."""
        if self.started:
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while self._pids() and time.monotonic() < deadline:
                time.sleep(0.5)
            self._signal(signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _signal(self, sig: int, marker: bytes | None = None) -> int:
        """Send ``sig`` to the processes :meth:`_pids` finds; returns how many."""
        pids = self._pids(marker)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return len(pids)

    def _pids(self, marker: bytes | None = None) -> list[int]:
        """Live processes that carry this cluster's marker (or ``marker``) in their
        environment."""
        marker = marker or f"{_MARKER}={self.temp_dir}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":  # zombies are gone already
                        pids.append(int(entry.name))
            except OSError:
                continue
        return pids

"""A request no node can ever satisfy ends the sweep at once (exit 2), instead of Ray Tune
waiting for it forever."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# the local path: the check runs before a local Ray would start
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


def test_an_impossible_gpu_request_fails_in_seconds_with_one_line(tmp_path):
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "sweep",
            str(ROOT / "search_spaces" / "smoke.yaml"),
            "-o",
            "resources.gpus_per_worker=1",
            "-o",
            f"sweep.dir={tmp_path / 'sweeps'}",
            "-o",
            "tracking.enabled=false",
            "-o",
            "sweep.num_cpus=4",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a hang would run far past this; Ray waits forever otherwise
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    # checked before a local Ray starts (that alone can take a minute on a busy machine)
    assert errors == [
        f"error: {ROOT / 'search_spaces' / 'smoke.yaml'}: resources.gpus_per_worker: each of "
        "its 2 workers asks for 1 GPU, but the Ray cluster has no GPUs (4 CPU, 0 GPU on 1 "
        "node); no autoscaler can add nodes on this machine, so no trial could ever start"
    ]
    assert elapsed < 30, f"took {elapsed:.1f}s"


AUTOSCALED = """\
name: autoscaled
task: {kind: regression, num_train: 64, num_val: 16}
optim: {name: sgd, lr: 0.01}
batch: {effective: 16, micro: 8}
train: {epochs: 2}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [0.001, 0.05], log: true}
resources: {workers: 1, cpus_per_worker: 1, custom_per_worker: {accel: 1}}
sweep: {num_samples: 2, max_concurrent: 1, sampler: {kind: random, seed: 0}}
stopping: {scheduler: {kind: none}}
tracking: {enabled: false}
"""


def test_a_request_only_an_autoscaled_node_has_waits_for_the_autoscaler_then_runs(tmp_path):
    """A cluster with Ray's autoscaler (its fake_multinode provider: real raylets on this
    machine): the head has no ``accel`` resource, a node type the autoscaler may add has.
    The sweep says what it waits for instead of failing, the autoscaler adds the node, and
    every trial runs there."""
    from tests.integration.local_ray_cluster import LocalRayCluster

    accel = {"accel": {"CPU": 1, "accel": 1}}  # a node type the autoscaler may add
    cluster = LocalRayCluster(head_cpus=2, worker_cpus=None, dashboard=False, autoscaled=accel)
    try:
        cluster.start()
        (tmp_path / "autoscaled.yaml").write_text(AUTOSCALED)
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "sweep", "autoscaled.yaml",
             "-o", f"sweep.dir={tmp_path / 'sweeps'}"],
            cwd=tmp_path, env={**cluster.env, "RAY_ADDRESS": cluster.gcs_address},
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        cluster.stop()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    waiting = [ln for ln in proc.stdout.splitlines() if ln.startswith("Waiting for the auto")]
    assert len(waiting) == 1, proc.stdout[-3000:]
    assert waiting[0].startswith(
        "Waiting for the autoscaler to add nodes: resources.custom_per_worker.accel: the "
        "trial asks for 1 accel, but the Ray cluster"
    ), waiting
    assert waiting[0].endswith("once it has; one trial needs 1 CPU, 1 accel."), waiting
    (sweep_dir,) = (tmp_path / "sweeps").glob("autoscaled-*")
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [r["epochs"] for r in summary["trials"]] == [2, 2], summary["trials"]
    assert all(not r["stop_reason"] for r in summary["trials"]), summary["trials"]

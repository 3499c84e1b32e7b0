"""A request no node can ever satisfy ends the sweep at once (exit 2), instead of Ray Tune
waiting for it forever."""

from __future__ import annotations

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

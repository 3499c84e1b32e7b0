"""What a retried RayJob does, on a real two-node Ray cluster (two ``ray start`` nodes on
127.0.0.1): the sweep runs as ``orchestrate sweep FILE --dir DIR`` (DIR stands for the
RayJob's volume), the driver's node is killed mid-sweep with everything on it (the head pod
lost), a fresh cluster runs the same command again, and it continues the sweep from DIR:
one parent run, one child run per trial, every report once, finished trials not retrained.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.local_ray_cluster import LocalRayCluster
from tests.integration.test_reliability import (
    EPOCHS,
    SWEEP,
    TRIALS,
    _assert_mlflow_has_every_report,
    _finished,
    _kill_group,
    _wait,
)
from tests.mlflow_store import migrated_store

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


def _driver(file: Path, folder: Path, cluster: LocalRayCluster, uri: str, log: Path):
    # the RayJob's entrypoint, attached to this cluster instead of `auto`
    cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", str(file), "--dir", str(folder),
           "-o", f"sweep.ray_address={cluster.gcs_address}", "-o", f"tracking.uri={uri}",
           "-o", f"sweep.dir={folder.parent}"]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=folder.parent, env=cluster.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip


class _PatientCluster(LocalRayCluster):
    """A local cluster whose `ray start` may take 5 minutes (a loaded machine)."""

    def _ray(self, *args: str, timeout: float = 300) -> None:
        super()._ray(*args, timeout=timeout)


def _started(cluster: LocalRayCluster, attempts: int = 2) -> LocalRayCluster:
    # on a loaded machine `ray start` can miss Ray's own start-up deadlines
    cluster.env["RAY_raylet_start_wait_time_s"] = "120"
    for attempt in range(attempts):
        try:
            cluster.start()
            return cluster
        except (RuntimeError, subprocess.TimeoutExpired):
            cluster.stop()
            if attempt == attempts - 1:
                raise
            cluster.temp_dir.mkdir()
    return cluster


@pytest.mark.timeout(2400)
def test_a_retried_driver_resumes_the_sweep_of_its_folder_without_duplicates(tmp_path):
    file = tmp_path / "retry.yaml"
    file.write_text(SWEEP.format(name="retry"))
    folder = tmp_path / "volume" / "retry-job"
    folder.parent.mkdir()
    # a migrated store, as a cluster's MLflow server has: a driver killed while it migrates
    # an empty SQLite file leaves it half-migrated (see the closing note of stop 25)
    shutil.copyfile(migrated_store(), tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    first = _PatientCluster(head_cpus=1, worker_cpus=2)
    try:
        _started(first)
        log = tmp_path / "first.log"
        proc = _driver(file, folder, first, uri, log)
        try:
            _wait(lambda: _finished(folder), 400, "one trial finished", proc, log)
            # the head pod is lost: its driver and every Ray process of its cluster die at once
            os.killpg(proc.pid, signal.SIGKILL)
            first.stop(grace_s=0)
            killed_at = time.time()
        finally:
            _kill_group(proc)
    finally:
        first.stop()
    assert not (folder / "summary.json").exists(), "the sweep ended before the kill"
    done_before = {d.name: (d / "finished.json").stat().st_mtime for d in _finished(folder)}
    assert 1 <= len(done_before) < TRIALS

    second = _PatientCluster(head_cpus=1, worker_cpus=2)
    try:
        _started(second)
        log = tmp_path / "second.log"
        proc = _driver(file, folder, second, uri, log)
        try:
            rc = proc.wait(timeout=500)
        finally:
            _kill_group(proc)
    finally:
        second.stop()
    output = log.read_text()
    assert rc == 0, output[-3000:]
    assert f"{folder} holds this sweep already: resuming it" in output
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["trials"]) == TRIALS
    assert all(t["status"] == "done" and t["epochs"] == EPOCHS for t in summary["trials"])
    for name, mtime in done_before.items():  # not trained again
        assert (folder / "ray" / "tune" / name / "finished.json").stat().st_mtime == mtime
        assert mtime < killed_at
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "retry"]
    parents = client.search_runs([experiment.experiment_id], "tags.`orch.kind` = 'sweep'")
    assert len(parents) == 1, [r.info.run_id for r in parents]
    runs = _assert_mlflow_has_every_report(client, folder)
    assert set(runs) == {t["trial_id"] for t in summary["trials"]}
    every = client.search_runs([experiment.experiment_id])
    assert len(every) == 1 + TRIALS
    # a trial started after Tune's last saved state dies with the head pod and runs again
    # as a new trial: its folder says so and its run is deleted, not listed beside the new
    from mlflow.entities import ViewType

    for marker in (folder / "ray" / "tune").glob("*/lost.json"):
        tid = json.loads(marker.read_text())["trial_id"]
        assert tid not in runs
        (run,) = client.search_runs(
            [experiment.experiment_id],
            f"tags.`orch.trial_id` = '{tid}'",
            run_view_type=ViewType.ALL,
        )
        assert run.info.lifecycle_stage == "deleted" and run.data.tags["orch.status"] == "lost"

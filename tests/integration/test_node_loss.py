"""The node running a trial vanishes (#14, fault (d)): on a two-node Ray cluster, the worker
node that holds a one-worker trial is SIGKILLed whole (raylet, agents, the trial's process),
as a preempted spot node is, and a new node joins. The trial continues on the new node from
its last checkpoint in the sweep's storage (a folder both nodes reach, as a shared volume):
no epoch from scratch, every step once in MLflow, ``orch.restored_from_epoch`` set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.integration.local_ray_cluster import LocalRayCluster
from tests.integration.test_reliability import (
    SWEEP,
    _assert_mlflow_has_every_report,
    _cli,
    _kill_group,
    _reports,
    _running,
    _sweep_dir,
    _trial_dirs,
    _wait,
)

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]
EPOCHS = 6


def _nodes(cluster: LocalRayCluster) -> dict[str, dict]:
    """Ray's view of the cluster's nodes (from the GCS), by node name."""
    code = "import json, ray; ray.init(); print(json.dumps(ray.nodes()))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**cluster.env, "RAY_ADDRESS": cluster.gcs_address},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return {n["NodeName"]: n for n in json.loads(proc.stdout.splitlines()[-1])}


@pytest.mark.timeout(900)
def test_a_trial_whose_node_is_lost_continues_on_another_node_from_its_checkpoint(tmp_path):
    # the head takes no trials (as on the shipped RayJob): every trial runs on a worker node
    cluster = LocalRayCluster(head_cpus=0, worker_cpus=None, dashboard=False)
    log = tmp_path / "sweep.log"
    proc = None
    try:
        cluster.start()
        cluster.add_node("spot-a", cpus=2)
        path = tmp_path / "lost.yaml"
        path.write_text(SWEEP.format(name="lost"))
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        proc = subprocess.Popen(
            _cli("sweep", str(path), "-o", f"sweep.dir={tmp_path / 'sweeps'}",
                 "-o", f"tracking.uri={uri}", "-o", f"sweep.ray_address={cluster.gcs_address}",
                 "-o", f"train.epochs={EPOCHS}", "-o", "sweep.num_samples=1",
                 "-o", "task.num_train=2048"),
            cwd=tmp_path, env=cluster.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        _wait(lambda: (tmp_path / "sweeps").is_dir() and _sweep_dir(tmp_path, "lost")
              and any(len(_reports(d)) >= 2 for d in _running(_sweep_dir(tmp_path, "lost"))),
              300, "the trial past its 2nd report", proc, log)  # fmt: skip
        sweep_dir = _sweep_dir(tmp_path, "lost")
        (trial_dir,) = _trial_dirs(sweep_dir)
        assert cluster.kill_node("spot-a") > 0
        before = len(_reports(trial_dir))
        assert before < EPOCHS, "the trial ended before its node was lost: make epochs longer"
        cluster.add_node("spot-b", cpus=2)
        rc = proc.wait(timeout=600)
        assert rc == 0, log.read_text()[-4000:]
        nodes = _nodes(cluster)
    finally:
        if proc is not None:
            _kill_group(proc)
        cluster.stop()

    # Ray saw the first node die; the only node with CPUs left for the retry was the new one
    assert not nodes["spot-a"]["Alive"] and nodes["spot-b"]["Alive"], nodes
    assert all(n["Resources"].get("CPU", 0) == 0 for k, n in nodes.items() if "spot" not in k)
    summary = json.loads((sweep_dir / "summary.json").read_text())
    (row,) = summary["trials"]
    assert row["status"] == "done" and row["epochs"] == EPOCHS and not row["stop_reason"], row
    reports = _reports(trial_dir)
    restored = [r for r in reports if "orch.restored_from_epoch" in r]
    assert restored, reports
    epoch = restored[0]["orch.restored_from_epoch"]
    # the checkpoint of the last epoch Tune heard of (or the one before: a node lost
    # between a report and its checkpoint's copy), never epoch 1 again
    assert epoch >= 1 and before - 1 <= epoch <= before, (before, epoch)
    assert [r["orch.epoch"] for r in restored] == list(range(epoch + 1, EPOCHS + 1))
    print(f"node lost after {before} reports; continued from epoch {epoch}, attempts "
          f"{[r['orch.attempt'] for r in reports]}, pids {sorted({r['pid'] for r in reports})}")
    assert restored[0]["orch.attempt"] > reports[0]["orch.attempt"]
    client = MlflowClient(uri)
    runs = _assert_mlflow_has_every_report(client, sweep_dir, trials=1)
    tags = client.get_run(runs[row["trial_id"]]).data.tags
    assert tags["orch.restored_from_epoch"] == str(epoch), tags

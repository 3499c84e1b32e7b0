"""A sweep survives a kill -9 of its driver, a Ctrl-C, and an MLflow server that goes away.

Each test runs ``orchestrate`` as a subprocess (a real local Ray cluster, real Optuna, real
MLflow) and compares what MLflow ends up with against what Tune itself recorded in each
trial's ``result.json``: the target is that nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.local_mlflow_stack import Service, free_ports, http_ok, wait_until

# a killed driver takes the Ray it started down with it, as on a laptop
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

EPOCHS = 3
TRIALS = 3
# ~400 optimizer steps of a small MLP per trial: ~10 s each on 2 CPU cores (most of it
# start-up), long enough to be killed in the middle of one
SWEEP = f"""\
name: {{name}}
task: {{{{kind: regression, num_train: 1024, num_val: 64, hidden: 64}}}}
optim: {{{{name: adamw, lr: 0.01}}}}
batch: {{{{effective: 8, micro: 8}}}}
train: {{{{epochs: {EPOCHS}, grad_clip: null}}}}
objective: {{{{metric: val/mse, mode: min}}}}
space:
  optim.lr: {{{{float: [1.0e-3, 1.0e-1], log: true}}}}
sweep: {{{{num_samples: {TRIALS}, max_concurrent: 1, sampler: {{{{kind: tpe, seed: 0}}}}}}}}
stopping: {{{{scheduler: {{{{kind: none}}}}}}}}
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *args]


def _start_sweep(tmp_path: Path, name: str, uri: str, *extra: str) -> subprocess.Popen[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SWEEP.format(name=name))
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        _cli("sweep", str(path), "-o", f"sweep.dir={tmp_path / 'sweeps'}", "-o",
             f"tracking.uri={uri}", *extra),
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _sweep_dir(tmp_path: Path, name: str) -> Path:
    found = list((tmp_path / "sweeps").glob(f"{name}-*"))
    assert len(found) == 1, found
    return found[0]


def _trial_dirs(sweep_dir: Path) -> list[Path]:
    """The folders of the trials Tune knows (a trial lost with a killed driver and run
    again as a new trial keeps its folder, marked ``lost.json``)."""
    return sorted(
        p
        for p in (sweep_dir / "ray" / "tune").glob("trainable_*")
        if p.is_dir() and not (p / "lost.json").exists()
    )


def _finished(sweep_dir: Path) -> list[Path]:
    return [d for d in _trial_dirs(sweep_dir) if (d / "finished.json").is_file()]


def _running(sweep_dir: Path) -> list[Path]:
    return [
        d
        for d in _trial_dirs(sweep_dir)
        if not (d / "finished.json").is_file()
        and (d / "result.json").is_file()
        and (d / "result.json").stat().st_size > 0
    ]


def _reports(trial_dir: Path) -> list[dict]:
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _wait(check, timeout_s: float, what: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError, OSError, ValueError):
            if check():
                return
        if proc.poll() is not None:
            pytest.fail(f"sweep ended (rc {proc.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.3)
    pytest.fail(f"{what} did not happen within {timeout_s} s:\n{log.read_text()[-3000:]}")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def _assert_mlflow_has_every_report(
    client: MlflowClient, sweep_dir: Path, trials: int = TRIALS
) -> dict[str, str]:
    """Every metric of every report Tune got is in the trial's child run, exactly once;
    exactly one child run per trial. Returns trial id -> run id."""
    parent = client.get_run(_parent_id(sweep_dir))
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    by_trial = {r.data.tags["orch.trial_id"]: r for r in children}
    assert len(children) == len(by_trial) == trials, [r.info.run_name for r in children]
    lost = []
    for trial_dir in _trial_dirs(sweep_dir):
        tid = trial_dir.name.split("_")[1]
        run = by_trial[tid]
        assert run.info.status == "FINISHED", (tid, run.info.status)
        # a trial that ran again after a kill reports its first steps twice; its run keeps
        # the first value of each step, so a step is lost only if no value of it arrived
        expected: dict[str, set[int]] = {}
        for report in _reports(trial_dir):
            for key, value in report.items():
                if key.startswith(("train/", "val/")) and isinstance(value, int | float):
                    expected.setdefault(key, set()).add(int(report["orch.step"]))
        for key, steps in expected.items():
            got = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(got) == len(set(got)), f"{tid} {key}: steps logged twice: {got}"
            if steps - set(got):
                lost.append((tid, key, sorted(steps - set(got))))
        final = _reports(trial_dir)[-1]
        assert run.data.metrics["val/mse"] == final["val/mse"]
    assert not lost, f"metrics lost: {lost}"
    return {tid: r.info.run_id for tid, r in by_trial.items()}


def _resume(sweep_dir: Path, tmp_path: Path, name: str) -> subprocess.Popen[str]:
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        _cli("resume", str(sweep_dir)), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip


def _resume_to_the_end(sweep_dir: Path, tmp_path: Path) -> dict:
    """``orchestrate resume`` run to its end (rc 0); the sweep's ``summary.json``."""
    resumed = subprocess.run(
        _cli("resume", str(sweep_dir)), cwd=tmp_path, capture_output=True, text=True,
        timeout=400,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return json.loads((sweep_dir / "summary.json").read_text())


@pytest.mark.timeout(900)
def test_ctrl_c_then_kill_9_then_resume_finishes_the_sweep_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "sweep.log"
    proc = _start_sweep(tmp_path, "sweep", uri)
    try:
        # a trial's finished mark is written before its last report: wait for the next
        # trial too, so the Ctrl-C finds one running
        _wait(lambda: (tmp_path / "sweeps").is_dir() and _sweep_dir(tmp_path, "sweep")
              and _finished(_sweep_dir(tmp_path, "sweep"))
              and _running(_sweep_dir(tmp_path, "sweep")),
              300, "one trial finished and the next running", proc, log)  # fmt: skip
        # a terminal's Ctrl-C signals the whole foreground process group, Ray's included
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        _kill_group(proc)
    sweep_dir = _sweep_dir(tmp_path, "sweep")
    output = log.read_text()
    assert rc == 130, output[-3000:]
    assert f"orchestrate resume {sweep_dir}" in output
    assert "Traceback" not in output
    assert not (sweep_dir / "summary.json").exists()
    # in MLflow: the sweep and every trial still running at the Ctrl-C ended KILLED
    client = MlflowClient(uri)
    parent = client.get_run(_parent_id(sweep_dir))
    assert parent.info.status == "KILLED"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    ended = {d.name.split("_")[1] for d in _finished(sweep_dir)}
    assert any(run.info.status == "KILLED" for run in children)
    for run in children:
        # a trial that wrote its finished mark during the stop may still have ended FINISHED
        allowed = {"FINISHED", "KILLED"} if run.data.tags["orch.trial_id"] in ended else {"KILLED"}
        assert run.info.status in allowed, (run.info.run_name, run.info.status)

    # resume, then kill -9 that driver as soon as it has finished one more trial
    log = tmp_path / "resume-1.log"
    first = len(_finished(sweep_dir))
    proc = _resume(sweep_dir, tmp_path, "resume-1")
    try:
        _wait(lambda: len(_finished(sweep_dir)) > first,
              300, "another trial finished", proc, log)  # fmt: skip
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=30)
    finally:
        _kill_group(proc)  # Ray's own processes of that driver
    assert "Resuming sweep 'sweep'" in log.read_text()
    done_before = {d.name: (d / "finished.json").stat().st_mtime for d in _finished(sweep_dir)}

    summary = _resume_to_the_end(sweep_dir, tmp_path)
    assert len(summary["trials"]) == TRIALS
    assert {t["trial"] for t in summary["trials"]} == {f"trial-{i}" for i in range(1, TRIALS + 1)}
    assert all(t["status"] == "done" and t["epochs"] == EPOCHS for t in summary["trials"])
    # trials that had finished were not trained again
    for name, mtime in done_before.items():
        assert (sweep_dir / "ray" / "tune" / name / "finished.json").stat().st_mtime == mtime
        assert mtime < killed_at
    runs = _assert_mlflow_has_every_report(MlflowClient(uri), sweep_dir)
    assert set(runs) == {t["trial_id"] for t in summary["trials"]}
    assert summary["best"][0]["run_id"] == runs[summary["best"][0]["trial_id"]]


@pytest.mark.timeout(600)
def test_a_driver_killed_mid_trial_resumes_that_trial_from_its_checkpoint(tmp_path):
    """kill -9 of the driver (and its Ray) while a 6-epoch trial is past its 2nd report,
    then ``orchestrate resume``: the trial continues after its last checkpoint (never
    from scratch), its run says from which epoch, and MLflow holds every step once with
    the values of the trial's own log."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "long.log"
    proc = _start_sweep(tmp_path, "long", uri, "-o", "train.epochs=6", "-o", "sweep.num_samples=1")
    try:
        _wait(lambda: (tmp_path / "sweeps").is_dir() and _sweep_dir(tmp_path, "long")
              and any(len(_reports(d)) >= 2 for d in _running(_sweep_dir(tmp_path, "long"))),
              300, "the trial past its 2nd report", proc, log)  # fmt: skip
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started
        proc.wait(timeout=30)
    finally:
        _kill_group(proc)
    sweep_dir = _sweep_dir(tmp_path, "long")
    (trial_dir,) = _trial_dirs(sweep_dir)
    before = len(_reports(trial_dir))
    assert 2 <= before < 6 and not (trial_dir / "finished.json").exists(), before
    summary = _resume_to_the_end(sweep_dir, tmp_path)
    (row,) = summary["trials"]
    assert row["status"] == "done" and row["epochs"] == 6, row
    reports = _reports(trial_dir)
    restored = [r for r in reports if "orch.restored_from_epoch" in r]
    assert restored, reports
    epoch = restored[0]["orch.restored_from_epoch"]
    # checkpoints after every epoch: it continues after the last one it reported, or the
    # one before (a kill between a report and its checkpoint's copy)
    assert before - 1 <= epoch <= before, (before, epoch)
    assert [r["orch.epoch"] for r in restored] == list(range(epoch + 1, 7))
    runs = _assert_mlflow_has_every_report(MlflowClient(uri), sweep_dir, trials=1)
    tags = MlflowClient(uri).get_run(runs[row["trial_id"]]).data.tags
    assert tags["orch.restored_from_epoch"] == str(epoch), tags


def _mlflow_server(tmp_path: Path, port: int, tag: str) -> Service:
    store = tmp_path / "server"
    store.mkdir(exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--host=127.0.0.1", f"--port={port}", "--workers=1",
        f"--backend-store-uri=sqlite:///{store / 'mlflow.db'}",
        f"--artifacts-destination={store / 'artifacts'}",
    ]  # fmt: skip
    service = Service(cmd, dict(os.environ), tmp_path / f"server-{tag}.log")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 120, "mlflow server")
    except TimeoutError:
        service.stop()
        raise
    return service


@pytest.mark.timeout(600)
def test_mlflow_server_down_for_20s_mid_sweep_loses_nothing(tmp_path):
    (port,) = free_ports(1)
    uri = f"http://127.0.0.1:{port}"
    server = _mlflow_server(tmp_path, port, "first")
    log = tmp_path / "outage.log"
    proc = _start_sweep(tmp_path, "outage", uri)
    try:
        _wait(lambda: (tmp_path / "sweeps").is_dir() and _sweep_dir(tmp_path, "outage")
              and _running(_sweep_dir(tmp_path, "outage")),
              300, "a trial running", proc, log)  # fmt: skip
        server.stop()
        down_at = time.monotonic()
        time.sleep(20)
        assert proc.poll() is None, "the sweep ended before the server came back"
        server = _mlflow_server(tmp_path, port, "second")
        back_after = time.monotonic() - down_at
        rc = proc.wait(timeout=400)
    finally:
        _kill_group(proc)
        server.stop()
    output = log.read_text()
    assert rc == 0, output[-3000:]
    assert "MLflow unreachable" in output and "reachable again" in output
    assert back_after >= 20
    server = _mlflow_server(tmp_path, port, "check")
    try:
        client = MlflowClient(uri)
        sweep_dir = _sweep_dir(tmp_path, "outage")
        _assert_mlflow_has_every_report(client, sweep_dir)
        best = client.get_model_version_by_alias("outage", "best")
        summary = json.loads((sweep_dir / "summary.json").read_text())
        assert best.run_id == summary["best"][0]["run_id"]
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_server_never_back_sweep_finishes_and_sync_uploads_later(tmp_path):
    (port,) = free_ports(1)
    uri = f"http://127.0.0.1:{port}"  # nothing listens there during the sweep
    path = tmp_path / "offline.yaml"
    # a short sweep: what matters here is what happens after it
    text = SWEEP.format(name="offline").replace("num_train: 1024", "num_train: 128")
    path.write_text(text.replace(f"num_samples: {TRIALS}", "num_samples: 2"))
    done = subprocess.run(
        _cli("sweep", str(path), "-o", f"sweep.dir={tmp_path / 'sweeps'}", "-o",
             f"tracking.uri={uri}", "-o", "tracking.flush_timeout_s=2"),
        cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sweep_dir = _sweep_dir(tmp_path, "offline")
    assert f"orchestrate sync {sweep_dir}" in done.stdout
    # the server still down: sync says so and fails, keeping everything
    early = subprocess.run(
        _cli("sync", str(sweep_dir), "--timeout", "3"), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert early.returncode == 1 and "still pending" in early.stderr
    server = _mlflow_server(tmp_path, port, "late")
    try:
        synced = subprocess.run(
            _cli("sync", str(sweep_dir)), capture_output=True, text=True, timeout=300
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "MLflow has everything" in synced.stdout
        client = MlflowClient(uri)
        _assert_mlflow_has_every_report(client, sweep_dir, trials=2)
        parent = client.get_run(_parent_id(sweep_dir))
        assert parent.data.tags["orch.registered_version"] == "1"
        assert client.get_model_version_by_alias("offline", "best").version == "1"
    finally:
        server.stop()


def _parent_id(sweep_dir: Path) -> str:
    state = json.loads((sweep_dir / "tracking" / "state.json").read_text())
    return str(state["runs"]["sweep"])

"""The tracking journal and its writer against a real local MLflow store (no server)."""

from __future__ import annotations

import json
import pickle
import time

import pytest
from mlflow import MlflowClient

from orchestrator.tracking.journal import Journal, JournalState, trial_key
from orchestrator.tracking.mlflow_tracker import SweepTracker
from orchestrator.tracking.writer import JournalBusyError, JournalWriter
from tests.unit.journal_state import rewind_applied


def _tracker(tmp_path, uri):
    return SweepTracker(uri, "exp", "sweepy", tmp_path / "sweep-1" / "tracking", fsync=False)


def _sweep_with_one_trial(tracker):
    tracker.start_sweep({"optim.lr": 0.1}, {"orch.task": "regression"})
    tracker.start_trial("t1", "trial-1", {"optim.lr": 0.01, "orch.accum": 2})
    for step in (1, 2, 3):
        tracker.log_result("t1", {"train/loss": 1.0 / step, "orch.accum": 2, "x": 5}, step)
    tracker.end_trial("t1", "FINISHED", {"orch.status": "completed"})
    tracker.end_sweep({"orch.num_trials": 1, "orch.best_trial": "trial-1"})


def test_ops_reach_mlflow_in_order_with_ids_recorded(tmp_path, store):
    tracker = _tracker(tmp_path, store)
    _sweep_with_one_trial(tracker)
    assert tracker.flush(60)
    client = MlflowClient(store)
    run = client.get_run(tracker.trial_runs["t1"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optim.lr": "0.01"}
    assert run.data.tags["orch.accum"] == "2"
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_id
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    parent = client.get_run(tracker.parent_id)
    assert parent.data.metrics["orch.num_trials"] == 1.0
    assert parent.data.tags["orch.best_trial"] == "trial-1"
    assert parent.info.status == "FINISHED"
    state = JournalState.load(tmp_path / "sweep-1" / "tracking" / "state.json")
    # experiment, sweep run + params, trial run + params, 3 results, trial tags + end,
    # sweep metrics + tags + end
    assert state.applied == len(tracker.journal) == 13
    tracker.close()


def test_unreachable_server_keeps_everything_for_a_later_writer(tmp_path, store):
    # port 9 (discard) refuses connections: every op stays pending
    tracker = SweepTracker(
        "http://127.0.0.1:9", "exp", "sweepy", tmp_path / "s" / "tracking", fsync=False
    )
    _sweep_with_one_trial(tracker)
    assert not tracker.flush(1.0)
    assert tracker.pending == 13
    assert tracker.writer.last_error and "127.0.0.1" in tracker.writer.last_error
    tracker.close()
    # the same journal, applied later to a reachable store ("orchestrate sync")
    journal = Journal(tmp_path / "s" / "tracking")
    writer = JournalWriter(journal, store)
    assert writer.drain(60)
    writer.stop()
    client = MlflowClient(store)
    run = client.get_run(writer.state.runs[trial_key("t1")])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 3


def test_replayed_ops_after_a_kill_make_no_duplicates(tmp_path, store):
    tracker = _tracker(tmp_path, store)
    _sweep_with_one_trial(tracker)
    assert tracker.flush(60)
    tracker.close()
    root = tmp_path / "sweep-1" / "tracking"
    # a kill between applying ops and recording it: state.json says only the experiment
    # was applied, so the runs and metrics are applied a second time
    state = rewind_applied(root, 1)
    writer = JournalWriter(Journal(root), store)
    assert writer.drain(60)
    writer.stop()
    client = MlflowClient(store)
    runs = client.search_runs([state["experiment_id"]])
    assert len(runs) == 2  # the parent and the trial, each once
    trial_run = writer.state.runs[trial_key("t1")]
    assert trial_run == state["runs"][trial_key("t1")]
    assert len(client.get_metric_history(trial_run, "train/loss")) == 3


def test_reopened_tracker_continues_runs_and_skips_logged_steps(tmp_path, store):
    tracker = _tracker(tmp_path, store)
    tracker.start_sweep({}, {})
    tracker.start_trial("t1", "trial-1", {})
    tracker.log_result("t1", {"train/loss": 3.0}, 1)
    tracker.log_result("t1", {"train/loss": 2.0}, 2)
    assert tracker.flush(60)
    tracker.close()
    again = _tracker(tmp_path, store)  # orchestrate resume
    assert again.resumed
    again.start_sweep({}, {})
    again.start_trial("t1", "trial-1", {})  # the trial runs again from its start
    for step, loss in ((1, 3.1), (2, 2.1), (3, 1.0)):
        again.log_result("t1", {"train/loss": loss}, step)
    again.end_trial("t1", "FINISHED", {})
    assert again.flush(60)
    client = MlflowClient(store)
    run_id = again.trial_runs["t1"]
    history = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.0), (3, 1.0)]
    assert client.get_run(run_id).info.status == "FINISHED"
    exp = client.get_experiment_by_name("exp")
    assert len(client.search_runs([exp.experiment_id])) == 2
    again.close()


def test_a_retried_trial_does_not_log_a_step_twice(tmp_path, store):
    # a Tune retry in the same driver (no resume): with train.checkpoint.every: 2 the trial
    # reported steps 1-3, died, and continues from the checkpoint of step 2
    tracker = _tracker(tmp_path, store)
    tracker.start_sweep({}, {})
    tracker.start_trial("t1", "trial-1", {})
    for step, loss in ((1, 3.0), (2, 2.0), (3, 1.5)):
        tracker.log_result("t1", {"train/loss": loss}, step)
    for step, loss in ((3, 1.4), (4, 1.0)):
        tracker.log_result("t1", {"train/loss": loss, "orch.attempt": 2}, step)
    tracker.end_trial("t1", "FINISHED", {})
    assert tracker.flush(60)
    client = MlflowClient(store)
    run = client.get_run(tracker.trial_runs["t1"])
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.0), (3, 1.5), (4, 1.0)]
    assert run.data.tags["orch.attempt"] == "2"  # tags of a skipped step still arrive
    tracker.close()


def test_rejected_op_is_set_aside_and_later_ops_still_apply(tmp_path, store):
    tracker = _tracker(tmp_path, store)
    tracker.start_sweep({"a": 1}, {})
    tracker.journal.append({"op": "log_batch", "key": "sweep", "params": [["a", "2"]]})
    tracker.end_sweep({"done": 1})
    assert tracker.flush(60)
    failed = (tmp_path / "sweep-1" / "tracking" / "failed.jsonl").read_text().splitlines()
    assert len(failed) == 1 and json.loads(failed[0])["op"]["params"] == [["a", "2"]]
    assert MlflowClient(store).get_run(tracker.parent_id).data.metrics["done"] == 1.0
    tracker.close()


def test_one_writer_per_journal(tmp_path, store):
    tracker = _tracker(tmp_path, store)
    with pytest.raises(JournalBusyError, match="another orchestrate process"):
        JournalWriter(Journal(tmp_path / "sweep-1" / "tracking"), store)
    tracker.close()


def test_a_line_cut_by_a_kill_is_dropped_not_fatal(tmp_path):
    root = tmp_path / "j"
    journal = Journal(root, fsync=False)
    journal.append({"op": "create_run", "key": "sweep"})
    journal.close()
    with (root / "ops.jsonl").open("a") as f:
        f.write('{"op": "log_ba')
    again = Journal(root)
    assert len(again) == 1 and again.created == {"sweep"}


def test_tracker_pickles_to_the_same_open_tracker(tmp_path, store):
    # Tune pickles its callbacks with the experiment; a restored sweep must get the live
    # tracker of that journal back, not a second writer
    tracker = _tracker(tmp_path, store)
    assert pickle.loads(pickle.dumps(tracker)) is tracker
    tracker.close()


def _pending_journal(tmp_path, reports: int):
    """A sweep journal whose every op is still pending: written while MLflow was away."""
    tracker = SweepTracker(
        "http://127.0.0.1:9", "exp", "sweepy", tmp_path / "s" / "tracking", fsync=False
    )
    tracker.start_sweep({"optim.lr": 0.1}, {})
    tracker.start_trial("t1", "trial-1", {"optim.lr": 0.01})
    for step in range(1, reports + 1):
        tracker.log_result("t1", {"train/loss": 1.0 / step, "val/mse": 2.0 / step}, step)
    return tracker


def _counting_writer(tmp_path, store, linger_s=0.0):
    """A writer of ``_pending_journal``'s journal and the metric count of each log_batch
    call it makes."""
    writer = JournalWriter(Journal(tmp_path / "s" / "tracking"), store, linger_s=linger_s)
    calls: list[int] = []
    log_batch = writer.client.log_batch

    def counted(run_id, metrics=(), params=(), tags=()):
        calls.append(len(metrics))
        return log_batch(run_id, metrics=metrics, params=params, tags=tags)

    writer.client.log_batch = counted
    return writer, calls


def test_a_writer_behind_merges_one_runs_reports_into_one_call(tmp_path, store):
    tracker = _pending_journal(tmp_path, reports=450)
    tracker.end_trial("t1", "FINISHED", {"orch.status": "completed"})
    tracker.close()
    writer, calls = _counting_writer(tmp_path, store)
    assert writer.drain(60)
    writer.stop()
    # 450 reports x 2 metrics: 400 reports (800 metrics) per call, then the last 50 with
    # the trial's end tags; the sweep's params are their own call (another run)
    assert calls == [0, 800, 100]
    client = MlflowClient(store)
    run_id = writer.state.runs[trial_key("t1")]
    history = client.get_metric_history(run_id, "val/mse")
    assert [(m.step, m.value) for m in history] == [(s, 2.0 / s) for s in range(1, 451)]
    assert client.get_run(run_id).data.tags["orch.status"] == "completed"
    assert writer.state.applied == len(writer.journal)


def test_a_rejected_merged_call_is_applied_op_by_op(tmp_path, store):
    tracker = _pending_journal(tmp_path, reports=2)
    # MLflow refuses to change a logged param: this op, and only this one, is set aside
    bad = {"op": "log_batch", "key": trial_key("t1"), "params": [["optim.lr", "0.5"]]}
    tracker.journal.append(bad)
    tracker.log_result("t1", {"train/loss": 0.2, "val/mse": 0.4}, 3)
    tracker.close()
    writer, calls = _counting_writer(tmp_path, store)
    assert writer.drain(60)
    writer.stop()
    # the sweep's params; the trial's params merged with reports 1-2 (the bad op names
    # optim.lr again, so a new call starts); it merged with report 3 and rejected; then
    # one at a time: the bad op's 3 attempts, report 3
    assert calls == [0, 4, 2, 0, 0, 0, 2]
    failed = (tmp_path / "s" / "tracking" / "failed.jsonl").read_text().splitlines()
    assert [json.loads(line)["op"] for line in failed] == [bad]
    client = MlflowClient(store)
    run = client.get_run(writer.state.runs[trial_key("t1")])
    assert run.data.params == {"optim.lr": "0.01"}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/mse")] == [1, 2, 3]


def _wait_applied(writer, count, timeout_s):
    deadline = time.monotonic() + timeout_s
    while writer.state.applied < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return writer.state.applied


def test_a_lingering_writer_holds_reports_back_until_a_flush_and_merges_them(tmp_path, store):
    tracker = _pending_journal(tmp_path, reports=0)  # sweep and trial created, nothing sent
    tracker.close()
    # 30 s of lingering, against waits of at most 20 s below: what arrives in time was
    # let through by something other than the linger running out
    writer, calls = _counting_writer(tmp_path, store, linger_s=30.0)
    journal = writer.journal
    writer.start()
    created = len(journal)  # the sweep's and trial's creates and params: not held back
    assert _wait_applied(writer, created, 20) == created
    for step in (1, 2, 3):
        journal.append({"op": "log_batch", "key": trial_key("t1"),
                        "metrics": [["val/mse", 1.0 / step, 0, step]]})  # fmt: skip
    time.sleep(0.5)
    assert writer.state.applied == created  # the reports wait for more
    started = time.monotonic()
    assert writer.flush(20)
    assert time.monotonic() - started < 20
    assert calls[-1] == 3  # the three reports in one call
    # another kind of op, appended while a report lingers, ends the wait and takes the
    # report before it along
    journal.append({"op": "log_batch", "key": trial_key("t1"),
                    "metrics": [["val/mse", 0.25, 0, 4]]})  # fmt: skip
    time.sleep(0.5)
    assert writer.state.applied == len(journal) - 1
    journal.append({"op": "set_status", "key": trial_key("t1"), "status": "FINISHED"})
    assert _wait_applied(writer, len(journal), 20) == len(journal)
    writer.stop()
    run = MlflowClient(store).get_run(writer.state.runs[trial_key("t1")])
    assert run.info.status == "FINISHED" and run.data.metrics["val/mse"] == 0.25

"""MLflow 3 objects a sweep writes through its journal, read back with MLflow's own API:
logged models linked to their runs' metrics, dataset inputs, experiment kind, statuses."""

from __future__ import annotations

import hashlib
import json

from mlflow import MlflowClient

from orchestrator.tasks.datasets import dataset_record
from orchestrator.tracking.journal import Journal, trial_key
from orchestrator.tracking.mlflow_tracker import SweepTracker
from orchestrator.tracking.writer import JournalWriter
from tests.unit.journal_state import rewind_applied


def _weights(folder, payload: bytes):
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(payload)
    (folder / "batch_plan.json").write_text('{"micro": 2, "accum": 1, "effective": 2}')
    return folder


def _two_trial_sweep(tmp_path, store, datasets):
    tracker = SweepTracker(store, "exp", "sweepy", tmp_path / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({"optim.lr": 0.1}, {})
    for tid, maps in (("t1", [0.2, 0.4]), ("t2", [0.3, 0.6])):
        tracker.start_trial(tid, f"trial-{tid}", {"loss.weight": tid})
        tracker.log_datasets(tid, datasets)
        for step, value in enumerate(maps, start=1):
            tracker.log_result(tid, {"val/map": value, "train/loss": 1.0 / step}, step)
        folder = _weights(tmp_path / tid / "model", tid.encode())
        assert tracker.log_trial_model(tid, str(folder))
        tracker.end_trial(tid, "FINISHED", {"orch.status": "completed"})
    tracker.register_best("t2", "trial-t2")
    tracker.end_sweep({"orch.num_trials": 2})
    assert tracker.flush(300)
    return tracker


def _datasets(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"12345")
    labels = tmp_path / "train.json"
    labels.write_text('{"a.png": ["cat"]}')
    return [dataset_record("synthetic-train", "training", labels, {"num_images": 1},
                           files=[labels], folders=[images])]  # fmt: skip


def test_trial_weights_are_logged_models_ranked_by_val_map(tmp_path, store):
    tracker = _two_trial_sweep(tmp_path, store, [])
    client = MlflowClient(store)
    runs = tracker.trial_runs
    experiment = client.get_experiment_by_name("exp")
    ranked = client.search_logged_models(
        [experiment.experiment_id],
        order_by=[{"field_name": "metrics.val/map", "ascending": False}],
    )
    # t2 ended at 0.6, t1 at 0.4: the models carry each run's last values, step 2
    assert [m.source_run_id for m in ranked] == [runs["t2"], runs["t1"]]
    best = ranked[0]
    assert best.name == "model" and str(best.status) == "READY"
    assert {m.key: (m.value, m.step) for m in best.metrics} == {
        "val/map": (0.6, 2),
        "train/loss": (0.5, 2),
    }
    assert best.params == {"loss.weight": "t2"}
    files = {f.path for f in client.list_logged_model_artifacts(best.model_id)}
    assert files == {"model.pt", "batch_plan.json"}
    run = client.get_run(runs["t2"])
    assert [(o.model_id, o.step) for o in run.outputs.model_outputs] == [(best.model_id, 2)]
    # linking the model re-logs the last values; the run's curve has no duplicate point
    assert [m.value for m in client.get_metric_history(runs["t2"], "val/map")] == [0.3, 0.6]
    version = client.get_model_version_by_alias("sweepy", "best")
    assert version.source == f"models:/{best.model_id}" and version.run_id == runs["t2"]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    tracker.close()


def test_a_kept_checkpoints_model_carries_the_metrics_of_its_own_step(tmp_path, store):
    """Three reports at steps 10, 20, 30, a checkpoint kept after the 2nd: its logged model
    holds exactly step 20's values and is a run output at step 20; the final model holds
    step 30's. Values by hand."""
    tracker = SweepTracker(store, "ck", "ck", tmp_path / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({}, {})
    tracker.start_trial("t1", "trial-1", {})
    for step, value, loss in ((10, 0.1, 3.0), (20, 0.5, 2.0), (30, 0.4, 1.0)):
        tracker.log_result("t1", {"val/map": value, "train/loss": loss}, step)
    kept = _weights(tmp_path / "ckpt" / "model", b"epoch-2")
    tags = {"orch.checkpoint_epoch": "2"}
    assert tracker.log_trial_model("t1", str(kept), "checkpoint-epoch-2", step=20, tags=tags)
    assert tracker.log_trial_model("t1", str(_weights(tmp_path / "final" / "model", b"end")))
    tracker.end_trial("t1", "FINISHED", {})
    tracker.end_sweep({})
    assert tracker.flush(300)
    client = MlflowClient(store)
    run = client.get_run(tracker.trial_runs["t1"])
    models = {m.name: m for m in client.search_logged_models([run.info.experiment_id])}
    assert sorted(models) == ["checkpoint-epoch-2", "model"]
    ckpt, final = models["checkpoint-epoch-2"], models["model"]
    assert {m.key: (m.value, m.step) for m in ckpt.metrics} == {
        "val/map": (0.5, 20),
        "train/loss": (2.0, 20),
    }
    assert {m.key: (m.value, m.step) for m in final.metrics} == {
        "val/map": (0.4, 30),
        "train/loss": (1.0, 30),
    }
    assert ckpt.tags["orch.checkpoint_epoch"] == "2" and ckpt.tags["orch.trial_id"] == "t1"
    outputs = sorted((o.step, o.model_id) for o in run.outputs.model_outputs)
    assert outputs == [(20, ckpt.model_id), (30, final.model_id)]
    # MLflow ranks the trial's models: the kept epoch-2 weights beat the final ones
    ranked = client.search_logged_models(
        [run.info.experiment_id], order_by=[{"field_name": "metrics.val/map", "ascending": False}]
    )
    assert [m.name for m in ranked] == ["checkpoint-epoch-2", "model"]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val/map")] == [
        0.1,
        0.5,
        0.4,
    ]
    tracker.close()


def test_datasets_are_run_inputs_with_digest_and_profile(tmp_path, store):
    datasets = _datasets(tmp_path)
    tracker = _two_trial_sweep(tmp_path, store, datasets)
    client = MlflowClient(store)
    for run_id in tracker.trial_runs.values():
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert len(inputs) == 1
        ds = inputs[0].dataset
        assert ds.name == "synthetic-train" and ds.digest == datasets[0]["digest"]
        assert json.loads(ds.source) == {"uri": str(tmp_path / "train.json")}
        assert json.loads(ds.profile) == {"num_images": 1}
        assert [(t.key, t.value) for t in inputs[0].tags] == [("mlflow.data.context", "training")]
    tracker.close()


def test_replayed_model_register_and_dataset_ops_make_no_duplicates(tmp_path, store):
    tracker = _two_trial_sweep(tmp_path, store, _datasets(tmp_path))
    tracker.close()
    root = tmp_path / "sweep-1" / "tracking"
    # a kill before state.json recorded anything after the experiment: all is applied again
    state = rewind_applied(root, 1)
    writer = JournalWriter(Journal(root), store)
    assert writer.drain(120)
    writer.stop()
    client = MlflowClient(store)
    models = client.search_logged_models([state["experiment_id"]])
    trial_runs = [state["runs"][trial_key(t)] for t in ("t1", "t2")]
    assert sorted(m.source_run_id for m in models) == sorted(trial_runs)
    assert len(client.search_model_versions("name='sweepy'")) == 1
    for key in (trial_key("t1"), trial_key("t2")):
        run = client.get_run(state["runs"][key])
        assert len(run.inputs.dataset_inputs) == 1
        assert len(run.outputs.model_outputs) == 1


def test_a_half_uploaded_model_is_finished_on_replay_not_duplicated(tmp_path, store):
    tracker = SweepTracker(store, "exp", "s", tmp_path / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({}, {})
    tracker.start_trial("t1", "trial-1", {})
    tracker.log_result("t1", {"val/map": 0.5}, 1)
    assert tracker.flush(300)
    # a kill after the model was created and before its upload finished: PENDING
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("exp").experiment_id
    run_id = tracker.trial_runs["t1"]
    client.create_logged_model(
        exp,
        name="model",
        source_run_id=run_id,
        tags={"orch.journal_key": "sweep-1/trial:t1/model"},
    )
    tracker.log_trial_model("t1", str(_weights(tmp_path / "m", b"w")))
    assert tracker.flush(300)
    (model,) = client.search_logged_models([exp])
    assert str(model.status) == "READY"
    assert {f.path for f in client.list_logged_model_artifacts(model.model_id)} == {
        "model.pt",
        "batch_plan.json",
    }
    tracker.close()


def test_experiment_kind_a_user_chose_is_kept(tmp_path, store):
    client = MlflowClient(store)
    exp = client.create_experiment("exp", tags={"mlflow.experimentKind": "genai_development"})
    tracker = SweepTracker(store, "exp", "s", tmp_path / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({}, {})
    assert tracker.flush(300)
    assert client.get_experiment(exp).tags["mlflow.experimentKind"] == "genai_development"
    tracker.close()


def test_ctrl_c_ends_the_trials_still_running_killed(tmp_path, store):
    tracker = SweepTracker(store, "exp", "s", tmp_path / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({}, {})
    for tid in ("t1", "t2", "t3"):
        tracker.start_trial(tid, tid, {})
    tracker.end_trial("t1", "FINISHED", {})
    tracker.end_trial("t2", "FAILED", {"orch.status": "error"})
    assert tracker.end_running_trials("KILLED", {"orch.status": "interrupted"}) == 1
    assert tracker.flush(300)
    client = MlflowClient(store)
    runs = tracker.trial_runs
    statuses = {t: client.get_run(runs[t]).info.status for t in ("t1", "t2", "t3")}
    assert statuses == {"t1": "FINISHED", "t2": "FAILED", "t3": "KILLED"}
    assert client.get_run(runs["t3"]).data.tags["orch.status"] == "interrupted"
    tracker.close()


def test_a_resumed_sweep_deletes_the_runs_of_trials_its_experiment_lost(tmp_path, store):
    folder = tmp_path / "sweep-1" / "tracking"
    first = SweepTracker(store, "exp", "s", folder, fsync=False)
    first.start_sweep({}, {})
    for tid in ("t1", "t2"):
        first.start_trial(tid, tid, {})
    first.end_trial("t1", "FINISHED", {})
    assert first.flush(300)
    first.close()  # the driver dies: Tune's saved state knows t1 only
    second = SweepTracker(store, "exp", "s", folder, fsync=False)
    second.start_sweep({}, {})
    second.start_trial("t3", "t3", {})  # the new trial that replaced t2
    second.end_trial("t3", "FINISHED", {})
    assert second.end_lost_trials({"t1", "t3"}) == ["t2"]
    # a later resume ends and deletes it again: MLflow takes that as a no-op
    assert second.end_lost_trials({"t1", "t3"}) == ["t2"]
    assert second.flush(300)
    client = MlflowClient(store)
    runs = second.trial_runs
    lost = client.get_run(runs["t2"])
    assert (lost.info.status, lost.info.lifecycle_stage) == ("KILLED", "deleted")
    assert lost.data.tags["orch.status"] == "lost"
    active = client.search_runs([lost.info.experiment_id], "tags.`orch.kind` = 'trial'")
    assert sorted(r.data.tags["orch.trial_id"] for r in active) == ["t1", "t3"]
    second.close()


def test_dataset_digest_covers_label_bytes_and_image_listing(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "b.png").write_bytes(b"xy")
    (tmp_path / "img" / "a.png").write_bytes(b"xyz")
    labels = tmp_path / "l.json"
    labels.write_text("{}")
    record = dataset_record("d", "validation", labels, {"n": 2}, files=[labels],
                            folders=[tmp_path / "img"])  # fmt: skip
    expected = hashlib.sha256(b"l.json{}a.png:3;b.png:2;").hexdigest()[:8]
    assert record["digest"] == expected
    assert record["context"] == "validation" and record["source_type"] == "local"
    (tmp_path / "img" / "a.png").write_bytes(b"xyzw")  # a changed image size: a new digest
    again = dataset_record("d", "validation", labels, {"n": 2}, files=[labels],
                           folders=[tmp_path / "img"])  # fmt: skip
    assert again["digest"] != expected


def test_promote_points_the_alias_at_another_trials_logged_model(tmp_path, store):
    from orchestrator.compare.promote import promote

    tracker = _two_trial_sweep(tmp_path, store, [])
    runs = tracker.trial_runs
    tracker.close()
    client = MlflowClient(store)
    (t1_model,) = client.search_logged_models(
        [client.get_experiment_by_name("exp").experiment_id],
        filter_string=f"source_run_id = '{runs['t1']}'",
    )
    done = promote(client, runs["t1"], "steadier curve", user="tester")
    assert (done.registered_now, done.previous, done.version) == (True, "1", "2")
    version = client.get_model_version_by_alias("sweepy", "best")
    assert str(version.version) == "2" and version.source == f"models:/{t1_model.model_id}"
    assert version.tags["orch.promoted_reason"] == "steadier curve"


def test_ui_command_links_the_runs_table_in_the_model_training_layout():
    from orchestrator.tracking.uri import ui_command

    assert (
        ui_command("sqlite:////w/mlflow.db")
        == "mlflow ui --backend-store-uri sqlite:////w/mlflow.db"
    )
    assert ui_command("sqlite:////w/mlflow.db", "7") == (
        "mlflow ui --backend-store-uri sqlite:////w/mlflow.db, then "
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert ui_command("http://h:5000/", "7") == (
        "open http://h:5000/#/experiments/7/runs?workflowType=machine_learning in a browser"
    )

"""Which checkpoints' weights become logged models at a trial's end
(orchestrator/tuning/checkpoint_models.py), on folders laid out as Ray Tune and Ray Train
V2 write them; the expected epochs, steps and folders are written out by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow.fs

from orchestrator.tuning.checkpoint_models import KeptModel, kept_models


def _checkpoint(folder, weights: bool = True):
    folder.mkdir(parents=True)
    (folder / "state-0.pt").write_bytes(b"state")
    if weights:
        (folder / "model").mkdir()
        (folder / "model" / "model.pt").write_bytes(b"weights")
    return folder


def test_a_multi_worker_trials_checkpoints_are_read_from_its_train_runs_snapshot(tmp_path):
    run = tmp_path / "ray" / "train-abc"
    _checkpoint(run / "checkpoint_b")
    _checkpoint(run / "checkpoint_a")
    _checkpoint(run / "checkpoint_c", weights=False)  # an external command's: no weights
    results = [
        {"checkpoint_dir_name": "checkpoint_b", "metrics": {"orch.epoch": 4, "orch.step": 40}},
        {"checkpoint_dir_name": "checkpoint_a", "metrics": {"orch.epoch": 2, "orch.step": 20}},
        {"checkpoint_dir_name": "checkpoint_c", "metrics": {"orch.epoch": 5, "orch.step": 50}},
    ]
    (run / "checkpoint_manager_snapshot.json").write_text(
        json.dumps({"ray_version": "2.60.0", "checkpoint_results": results})
    )
    storage = SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(), storage_fs_path=str(tmp_path / "ray")
    )
    trial = SimpleNamespace(trial_id="abc", storage=storage, run_metadata=None)
    kept = kept_models(trial, tmp_path / "local")
    assert kept == [
        KeptModel(2, 20, str(run / "checkpoint_a" / "model")),
        KeptModel(4, 40, str(run / "checkpoint_b" / "model")),
    ]
    assert [k.name for k in kept] == ["checkpoint-epoch-2", "checkpoint-epoch-4"]


def test_a_one_worker_trials_checkpoints_are_tunes(tmp_path):
    folder = _checkpoint(tmp_path / "trial" / "checkpoint_000002")
    checkpoint = SimpleNamespace(filesystem=pyarrow.fs.LocalFileSystem(), path=str(folder))
    result = SimpleNamespace(checkpoint=checkpoint, metrics={"orch.epoch": 3, "orch.step": 9})
    manager = SimpleNamespace(best_checkpoint_results=[result])
    trial = SimpleNamespace(
        trial_id="t", storage=None, run_metadata=SimpleNamespace(checkpoint_manager=manager)
    )
    assert kept_models(trial, tmp_path / "local") == [KeptModel(3, 9, str(folder / "model"))]


def test_no_snapshot_or_an_unknown_format_keeps_nothing(tmp_path):
    storage = SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(), storage_fs_path=str(tmp_path)
    )
    trial = SimpleNamespace(trial_id="x", storage=storage, run_metadata=None)
    assert kept_models(trial, tmp_path / "local") == []
    (tmp_path / "train-x").mkdir()
    (tmp_path / "train-x" / "checkpoint_manager_snapshot.json").write_text('{"results": []}')
    assert kept_models(trial, tmp_path / "local") == []

"""The weights of a trial's kept checkpoints, for MLflow logged models.

Each checkpoint a built-in trial writes holds, beside every rank's state, rank 0's weights
of that epoch in ``model/`` (``model.pt``, ``batch_plan.json``: the layout of the trial's
final ``model/``). When the trial ends, the tracking callback logs the ``model/`` of every
checkpoint Tune kept (``train.checkpoint.keep``) as a logged model of the trial's run, with
the metrics of that checkpoint's report: MLflow's Models view then ranks a trial's epochs,
not only its last one. Torch-free: the driver only points MLflow at files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.reserved import EPOCH, STEP
from orchestrator.training.checkpoint_layout import MODEL_DIR, WEIGHTS_FILE

log = logging.getLogger(__name__)

#: what a Ray Train V2 run keeps about its checkpoints, in its storage folder
TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"


@dataclass(frozen=True)
class KeptModel:
    """One kept checkpoint's weights: its epoch, the report's step, a local folder."""

    epoch: int
    step: int
    folder: str

    @property
    def name(self) -> str:
        """The logged model's name (MLflow's Models view lists it beside ``model``)."""
        return f"checkpoint-epoch-{self.epoch}"


def kept_models(trial: Any, local_root: Path) -> list[KeptModel]:
    """The weights of every checkpoint kept for ``trial``, oldest first.

    A one-worker trial's checkpoints are Tune's (its checkpoint manager); a multi-worker
    trial's are its Ray Train run's (``train-<trial id>`` beside Tune's folder in the
    sweep's storage: Tune never holds them), read from that run's checkpoint-manager
    snapshot. A checkpoint on the local filesystem is read where it lies; one in remote
    storage (S3, GCS) has only its ``model/`` copied into ``local_root/epoch-<N>``.
    Checkpoints without weights (an external command's) are left out."""
    kept: list[KeptModel] = []
    for metrics, filesystem, path in _tune_results(trial) or _train_results(trial):
        epoch = int(metrics.get(EPOCH) or metrics.get("training_iteration") or 0)
        step = int(metrics.get(STEP, metrics.get("training_iteration", 0)) or 0)
        folder = _local_folder(filesystem, path, local_root / f"epoch-{epoch}")
        if folder is not None and (folder / WEIGHTS_FILE).is_file():
            kept.append(KeptModel(epoch, step, str(folder)))
    return sorted(kept, key=lambda k: k.step)


def _tune_results(trial: Any) -> list[tuple[dict[str, Any], Any, str]]:
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    results = list(getattr(manager, "best_checkpoint_results", None) or [])
    return [(r.metrics or {}, r.checkpoint.filesystem, r.checkpoint.path) for r in results]


def _train_results(trial: Any) -> list[tuple[dict[str, Any], Any, str]]:
    storage = getattr(trial, "storage", None)
    if storage is None:
        return []
    filesystem = storage.storage_filesystem
    run = f"{str(storage.storage_fs_path).rstrip('/')}/train-{trial.trial_id}"
    try:
        with filesystem.open_input_stream(f"{run}/{TRAIN_SNAPSHOT}") as f:
            snapshot = json.loads(f.read().decode())
        return [
            (r.get("metrics") or {}, filesystem, f"{run}/{r['checkpoint_dir_name']}")
            for r in snapshot["checkpoint_results"]
        ]
    except FileNotFoundError:  # a one-worker trial, or no checkpoint yet
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:  # Ray changed its format
        log.warning("could not read the checkpoints of Ray Train run %s: %s", run, exc)
        return []


def _local_folder(filesystem: Any, path: str, target: Path) -> Path | None:
    import pyarrow.fs

    source = f"{path.rstrip('/')}/{MODEL_DIR}"
    if isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return Path(source)
    try:
        info = filesystem.get_file_info(f"{source}/{WEIGHTS_FILE}")
        if info.type == pyarrow.fs.FileType.NotFound:
            return None
        target.mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(
            source, str(target), source_filesystem=filesystem,
            destination_filesystem=pyarrow.fs.LocalFileSystem(),
        )  # fmt: skip
        return target
    except OSError as exc:  # the final model is logged regardless
        log.warning("could not fetch the weights of checkpoint %s: %s", path, exc)
        return None

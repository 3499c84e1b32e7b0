"""``orchestrate sweep FILE --dir DIR``: one fixed folder per sweep, started or resumed.

A RayJob that is retried (its head pod lost, its cluster recreated) runs the same
entrypoint again. With ``--dir`` on durable storage that second run finds the first one's
folder and continues it, as ``orchestrate resume DIR`` would, instead of starting a second
sweep with a second set of MLflow runs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config.models import SweepConfig
from orchestrator.errors import OrchestratorError
from orchestrator.redact import strip_credentials
from orchestrator.search_space.space import flatten

SWEEP_FILE = "sweep.yaml"


class FolderPlan(Enum):
    """What ``--dir`` does with the folder it is given."""

    START = "start"  # empty or missing: a new sweep in it
    RESTART = "restart"  # this sweep, stopped before Tune saved any state: start it again
    RESUME = "resume"  # this sweep with Tune state: continue it


def plan_folder(folder: Path, config: SweepConfig) -> FolderPlan:
    """Decide what to do with ``folder``; raises :class:`OrchestratorError` when it holds
    something other than this sweep (another file, other overrides, not a sweep folder)."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return FolderPlan.START
    saved_file = folder / SWEEP_FILE
    if not saved_file.is_file():
        raise OrchestratorError(
            f"--dir {folder}: the folder is not empty and holds no {SWEEP_FILE}; "
            "give an empty or new folder, or the folder of this same sweep"
        )
    saved = _where_it_runs_removed(yaml.safe_load(saved_file.read_text(encoding="utf-8")))
    now = _where_it_runs_removed(_comparable(config))
    if saved != now:
        raise OrchestratorError(
            f"--dir {folder} holds a different sweep ({_first_difference(saved, now)}); "
            "a folder resumes only the sweep file and overrides that started it: use a new "
            f"--dir, or `orchestrate resume {folder}` to continue the saved one"
        )
    from ray import tune
    from ray.tune.execution.tune_controller import TuneController

    tune_dir = folder / "ray" / "tune"
    # tuner.pkl is written at the start, the experiment state only by the first snapshot:
    # a driver killed in between left nothing that Tuner.restore could continue
    snapshots = list(tune_dir.glob(TuneController.CKPT_FILE_TMPL.format("*")))
    if tune.Tuner.can_restore(str(tune_dir)) and snapshots:
        return FolderPlan.RESUME
    return FolderPlan.RESTART


def _comparable(config: SweepConfig) -> Any:
    # the saved file went through strip_credentials and YAML: compare like with like
    dump = strip_credentials(config.model_dump(by_alias=True, mode="json"))
    return yaml.safe_load(yaml.safe_dump(dump, sort_keys=False))


def _where_it_runs_removed(dump: Any) -> Any:
    # the Ray cluster is not part of what the sweep is: a retry runs on a new one, whose
    # address may differ (`auto` on KubeRay, a new head elsewhere)
    if isinstance(dump, dict) and isinstance(dump.get("sweep"), dict):
        dump["sweep"].pop("ray_address", None)
    return dump


def _first_difference(saved: Any, now: Any) -> str:
    old = flatten(saved) if isinstance(saved, dict) else {"(file)": saved}
    new = flatten(now)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}: saved {old.get(key)!r}, now {new.get(key)!r}"
    return "its contents differ"

"""What a sweep was created with, kept beside its ``sweep.yaml``, so ``resume`` can refuse edits.

``orchestrate resume`` restores most of a sweep from Ray Tune's experiment folder (the
searcher, ``num_samples``, the scheduler, the stopper, the trial counter) but builds the
trainable, the data and the tracker from ``sweep.yaml``. An edit to that file would be
half-applied: trials run again with the new epochs while their MLflow runs keep the old
parameter, a new ``num_samples`` is announced but not run. So a resumed sweep must match
what created it, except for the few keys listed in :data:`SAFE_TO_CHANGE`, which resume
honours in full and only when the user names them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config.models import SweepConfig
from orchestrator.errors import OrchestratorError
from orchestrator.redact import strip_credentials
from orchestrator.search_space.space import flatten

SWEEP_FILE = "sweep.yaml"
FINGERPRINT_FILE = "sweep.created.json"

#: keys a resume honours when changed, and why (everything else is refused)
SAFE_TO_CHANGE = {
    "tracking.flush_timeout_s": "read only when the sweep ends, by the resuming process",
    "sweep.num_cpus": "sizes the local Ray that the resuming process starts",
    "sweep.ray_address": "the cluster the resuming process joins (a lost head node)",
    "sweep.ray_dashboard": "whether the local Ray that the resuming process starts has one",
}


def save_sweep(config: SweepConfig, sweep_dir: Path) -> Path:
    """Write ``sweep.yaml`` and its fingerprint into a new sweep folder; returns the file."""
    dump = _dump(config)
    path = sweep_dir / SWEEP_FILE
    path.write_text(yaml.safe_dump(dump, sort_keys=False))
    (sweep_dir / FINGERPRINT_FILE).write_text(
        json.dumps({"sha256": _sha256(dump), "config": dump}, indent=1)
    )
    return path


def check_resume(config: SweepConfig, sweep_dir: Path, allowed: Iterable[str] = ()) -> bool:
    """Raise unless ``config`` (the folder's ``sweep.yaml`` now) is what created the sweep,
    apart from ``allowed`` keys, each of which must be in :data:`SAFE_TO_CHANGE`.

    Returns False for a folder written before fingerprints (nothing to compare with).
    """
    allowed = list(allowed)
    unsafe = [key for key in allowed if key not in SAFE_TO_CHANGE]
    if unsafe:
        raise OrchestratorError(
            f"--allow-change {', '.join(unsafe)}: resume cannot honour a change of "
            f"{'this key' if len(unsafe) == 1 else 'these keys'}; only "
            f"{', '.join(SAFE_TO_CHANGE)} can change (start a new sweep for other changes)"
        )
    saved_path = sweep_dir / FINGERPRINT_FILE
    if not saved_path.is_file():
        return False
    saved = json.loads(saved_path.read_text())
    dump = _dump(config)
    if _sha256(dump) == saved["sha256"]:
        return True
    before, now = flatten(saved["config"]), flatten(dump)
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    # a safe key that a later version added (the folder's sweep never had it) is no edit
    refused = [
        k for k in changed if k not in allowed and not (k in SAFE_TO_CHANGE and k not in before)
    ]
    if refused:
        edits = ", ".join(f"{k} ({_show(before.get(k))} -> {_show(now.get(k))})" for k in refused)
        safe = [k for k in refused if k in SAFE_TO_CHANGE]
        hint = f"; accept {', '.join(safe)} with --allow-change KEY" if safe else ""
        raise OrchestratorError(
            f"{sweep_dir / SWEEP_FILE}: changed since the sweep started, which resume cannot "
            f"honour: {edits}; undo the edit or start a new sweep{hint}"
        )
    return True


def _dump(config: SweepConfig) -> dict[str, Any]:
    # credentials in URIs stay in the process that was given them (orchestrator.redact)
    return strip_credentials(config.model_dump(by_alias=True, mode="json"))


def _sha256(dump: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)

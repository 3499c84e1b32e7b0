"""``orchestrate sync SWEEP_DIR``: upload what a sweep buffered while MLflow was away."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.redact import mask_userinfo
from orchestrator.tracking.journal import (
    FAILED_FILE,
    OPS_FILE,
    STATE_FILE,
    TORN_FILE,
    Journal,
    iter_failed,
    iter_set_aside,
)

META_FILE = "meta.json"


def sync_command(sweep_dir: str, uri: str | None, timeout: float) -> int:
    """Apply the journal's pending ops; 0 when MLflow has everything, 1 when not yet."""
    from orchestrator.tracking.writer import JournalBusyError, JournalWriter

    root = Path(sweep_dir) / "tracking"
    if not (root / OPS_FILE).is_file():
        raise OrchestratorError(
            f"{sweep_dir}: no tracking journal (tracking/{OPS_FILE}); is it a sweep folder "
            "written with tracking enabled?"
        )
    meta = json.loads((root / META_FILE).read_text()) if (root / META_FILE).is_file() else {}
    target = uri or meta.get("uri")
    if not target:
        raise OrchestratorError(f"{root}: no tracking URI recorded; pass --tracking-uri")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    journal = Journal(root)
    _report_damage(journal, root)
    try:
        writer = JournalWriter(journal, target)
    except JournalBusyError as exc:
        journal.close()
        raise OrchestratorError(str(exc)) from None
    except OrchestratorError:
        journal.close()
        raise
    if writer.recounted_from is not None:
        print(
            f"{STATE_FILE} counted {writer.recounted_from} writes applied, but the journal's "
            f"lines moved beneath that count: {writer.state.applied} of its writes are applied"
        )
    before = writer.pending
    shown = mask_userinfo(target)
    print(f"{before} of {len(journal)} MLflow writes pending; uploading to {shown} ...")
    done = writer.drain(timeout)
    writer.stop()
    journal.close()
    failed = sum(1 for _ in iter_failed(root))
    if failed:
        print(f"{failed} writes were rejected by MLflow; see {root / FAILED_FILE}")
    if not done:
        print(
            f"MLflow still unreachable after {timeout:.0f} s ({writer.last_error}); "
            f"{writer.pending} writes still pending. Run this command again later.",
            file=sys.stderr,
        )
        return 1
    if any(not d.recovered for d in journal.damaged):
        print(f"Uploaded {before} writes; MLflow has every write the journal still holds.")
    else:
        print(f"Uploaded {before} writes; MLflow has everything of this sweep.")
    return 0


def _report_damage(journal: Journal, root: Path) -> None:
    """Say which bytes of the journal are not ops: torn lines set aside, damaged lines."""
    torn = list(iter_set_aside(root))
    if torn:
        where = ", ".join(d.describe() for d in torn)
        print(
            f"{len(torn)} line(s) cut by a kill mid-write were set aside (never applied, "
            f"never complete): {where}; see {root / TORN_FILE}"
        )
    if journal.damaged:
        where = ", ".join(d.describe() for d in journal.damaged)
        print(f"{len(journal.damaged)} damaged line(s) in {journal.path} skipped: {where}")

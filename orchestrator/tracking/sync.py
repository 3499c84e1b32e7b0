"""``orchestrate sync SWEEP_DIR``: upload what a sweep buffered while MLflow was away."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.redact import mask_userinfo
from orchestrator.tracking.journal import OPS_FILE, Journal, iter_failed

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
    try:
        writer = JournalWriter(journal, target)
    except JournalBusyError as exc:
        raise OrchestratorError(str(exc)) from None
    before = writer.pending
    shown = mask_userinfo(target)
    print(f"{before} of {len(journal)} MLflow writes pending; uploading to {shown} ...")
    done = writer.drain(timeout)
    writer.stop()
    journal.close()
    failed = sum(1 for _ in iter_failed(root))
    if failed:
        print(f"{failed} writes were rejected by MLflow; see {root / 'failed.jsonl'}")
    if not done:
        print(
            f"MLflow still unreachable after {timeout:.0f} s ({writer.last_error}); "
            f"{writer.pending} writes still pending. Run this command again later.",
            file=sys.stderr,
        )
        return 1
    print(f"Uploaded {before} writes; MLflow has everything of this sweep.")
    return 0

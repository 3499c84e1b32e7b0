"""Rewind a journal's ``state.json`` as a kill between applying ops and recording it would."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.tracking.journal import Journal


def rewind_applied(root: Path, applied: int) -> dict:
    """Make ``state.json`` under ``root`` say only the first ``applied`` ops reached MLflow
    (named by place and hash, as the writer records it) and no run ids; returns the state
    as it was before."""
    state = json.loads((root / "state.json").read_text())
    journal = Journal(root)
    start, digest = journal.mark(applied - 1)
    journal.close()
    rewound = {"applied": applied, "applied_start": start, "applied_digest": digest, "runs": {}}
    (root / "state.json").write_text(json.dumps({**state, **rewound}))
    return state

"""Sweep execution on Ray Tune (imported lazily by the CLI: it pulls in Ray)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.tuning.summary import SweepSummary


def run_sweep(*args: Any, **kwargs: Any) -> SweepSummary:
    """See :func:`orchestrator.tuning.runner.run_sweep`."""
    from orchestrator.tuning.runner import run_sweep as _run

    return _run(*args, **kwargs)


__all__ = ["run_sweep"]

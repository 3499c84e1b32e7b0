"""Every shipped sweep file loads and validates, so none can rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))


def test_there_are_shipped_sweeps():
    assert {p.name for p in SHIPPED} >= {"rtdetr.yaml", "smoke.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_is_valid_and_documents_its_command(path: Path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# Run: orchestrate sweep search_spaces/")
    config = load_sweep(path)
    assert config.space, "a shipped sweep searches something"

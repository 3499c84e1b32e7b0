"""Shared test helpers: skip GPU tests without CUDA; write sweep files; fresh MLflow
SQLite stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.mlflow_store import migrated_store


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU tests either
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


MINIMAL = """\
name: t
task: {kind: rtdetr}
objective: {metric: val/map, mode: max}
"""


@pytest.fixture
def write_sweep(tmp_path: Path):
    """Write YAML text (appended to a minimal valid sweep) and return its path."""

    def write(extra: str = "", *, base: str = MINIMAL, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(base + extra, encoding="utf-8")
        return path

    return write


@pytest.fixture
def store(tmp_path: Path) -> str:
    """The URI of a new, empty MLflow SQLite store of this test: a copy of one migrated
    file, as MLflow would create it, without paying its migrations per test."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_store(), path)
    return f"sqlite:///{path}"

"""Shared test helpers: skip GPU tests without CUDA; write sweep files; fresh MLflow
SQLite stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.mlflow_store import migrated_store

# The test files that take longest (seconds in a fresh-clone CI run), started first: with
# pytest-xdist's --dist loadfile a file runs whole in one process, so a long file started
# last would run alone at the end while the other process idles. A hint only: a file
# missing here runs after these, in collection order.
_SLOWEST_FIRST = (
    "tests/integration/test_reliability.py",  # 281 s
    "tests/integration/test_trial_restore.py",  # 181 s
    "tests/integration/test_smoke_sweep.py",  # 146 s
    "tests/integration/test_sweep_stopping.py",  # 138 s
    "tests/integration/test_launch_ray.py",  # 135 s
    "tests/integration/test_trial_ends.py",  # 119 s
    "tests/integration/test_samplers_sweep.py",  # 103 s
    "tests/integration/test_k8s_retry.py",  # 90 s
    "tests/integration/test_multiprocess_training.py",  # 86 s
)


def _start_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return _SLOWEST_FIRST.index(path) if path in _SLOWEST_FIRST else len(_SLOWEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: the order within a file and among the rest stays
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

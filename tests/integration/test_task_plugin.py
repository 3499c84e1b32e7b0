"""A task from an installed package: ``pip install tests/plugin_pkg`` (into a folder on
PYTHONPATH), then ``task.kind: line`` is found through the ``orchestrator.tasks`` entry
points, validated like a built-in task and swept by real Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

ROOT = Path(__file__).resolve().parents[2]

SWEEP = """\
name: plugin
task: {kind: line, slope: 3.0, num_train: 32, num_val: 8}
loss: {weight: {mse: 1.0}}
optim: {lr: 0.05}
batch: {effective: 8, micro: 8}
train: {epochs: 2, grad_clip: null}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [0.01, 0.1], log: true}
sweep: {num_samples: 1, max_concurrent: 1}
stopping: {scheduler: {kind: none}}
tracking: {enabled: false}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """An environment whose PYTHONPATH holds the plugin, installed by pip as a user would."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "tests" / "plugin_pkg")],
        check=True, timeout=300,
    )  # fmt: skip
    path = os.pathsep.join([str(target), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_an_installed_plugin_task_is_validated_like_a_built_in(installed, tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(SWEEP)
    ok = _cli(installed, "validate", str(path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "task: line; objective: val/mse (min)" in ok.stdout
    # its own config model checks its keys, with the built-in error format
    bad = _cli(installed, "validate", str(path), "-o", "task.slop=1", cwd=tmp_path)
    assert bad.returncode == 2
    assert "task.slop: unknown key (did you mean 'slope'?)" in bad.stderr
    # and the objective against the metrics its TaskSpec declares
    wrong = _cli(installed, "validate", str(path), "-o", "objective.metric=val/map",
                 cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 2 and "val/mse" in wrong.stderr
    # without the package the kind is unknown
    plain = {**installed, "PYTHONPATH": str(ROOT)}
    missing = _cli(plain, "validate", str(path), cwd=tmp_path)
    assert missing.returncode == 2 and "task.kind: unknown task kind" in missing.stderr


def test_an_installed_plugin_task_trains_in_a_sweep(installed, tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(SWEEP)
    proc = _cli(installed, "sweep", str(path), "-o", f"sweep.dir={tmp_path / 'sweeps'}",
                cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    import json

    (sweep_dir,) = (tmp_path / "sweeps").glob("plugin-*")
    (row,) = json.loads((sweep_dir / "summary.json").read_text())["trials"]
    assert row["status"] == "done" and row["epochs"] == 2
    assert row["metrics"]["val/mse"] >= 0 and "train/loss_mse" in row["metrics"]

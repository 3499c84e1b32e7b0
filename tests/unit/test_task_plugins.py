"""Entry-point task plugins that cannot serve are one clear line naming the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.plugins import PluginError, load_plugin, plugin_names
from orchestrator.errors import ConfigErrors
from orchestrator.tasks import TASKS, TaskSpec, get_task

MODULE = """
from typing import Literal
from orchestrator.tasks import LossConfig, TaskConfig, TaskSpec

class GoodConfig(TaskConfig):
    kind: Literal["goodplug"] = "goodplug"

class WrongKind(TaskConfig):
    kind: Literal["other"] = "other"

def prepare(config, data_root):
    pass

GOOD = TaskSpec(config=GoodConfig, loss=LossConfig, impl="x:Y", prepare=prepare,
                val_metrics=("val/acc",), components=("ce",))
WRONG_KIND = TaskSpec(config=WrongKind, loss=LossConfig, impl="x:Y", prepare=prepare,
                      val_metrics=(), components=())
NOT_A_SPEC = object()
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """An installed distribution (a dist-info folder on sys.path) declaring four tasks."""
    (tmp_path / "plugmod.py").write_text(MODULE)
    info = tmp_path / "plugdist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugdist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[orchestrator.tasks]\ngoodplug = plugmod:GOOD\nwrongkind = plugmod:WRONG_KIND\n"
        "notaspec = plugmod:NOT_A_SPEC\nbroken = plugmod_missing:X\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("goodplug", "wrongkind", "notaspec", "broken"):
        TASKS.remove(name)


def test_a_declared_task_is_found_by_name_and_registered(site):
    assert {"goodplug", "wrongkind", "notaspec", "broken"} <= set(plugin_names())
    spec = get_task("goodplug")
    assert spec.val_metrics == ("val/acc",) and spec.config_model().__name__ == "GoodConfig"
    assert get_task("goodplug") is spec  # loaded once
    assert load_plugin("not-declared", TaskSpec) is None


def test_plugins_that_cannot_serve_say_which_package_and_why(site):
    with pytest.raises(PluginError) as info:
        get_task("wrongkind")
    assert str(info.value) == (
        "task plugin 'wrongkind' (plugmod:WRONG_KIND, package plugdist): its config must "
        "subclass TaskConfig with kind defaulting to 'wrongkind', got 'WrongKind' with "
        "kind='other'"
    )
    with pytest.raises(PluginError, match=r"must name a TaskSpec, got object"):
        get_task("notaspec")
    with pytest.raises(PluginError, match=r"does not load: ModuleNotFoundError"):
        get_task("broken")


def test_the_sweep_file_names_the_line_of_a_broken_plugins_kind(site, write_sweep):
    from orchestrator.config import load_sweep

    path = write_sweep(
        "", base="name: x\ntask: {kind: notaspec}\nobjective: {metric: val/a, mode: max}\n"
    )
    with pytest.raises(ConfigErrors) as info:
        load_sweep(Path(path))
    (error,) = info.value.errors
    assert error.key == "task.kind" and error.line == 2
    assert "must name a TaskSpec" in error.rule

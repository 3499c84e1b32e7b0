"""A registry looks a name up by importing that name's own built-in module first."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from orchestrator.config.registry import Registry


def _in_fresh_process(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_a_task_lookup_imports_only_that_tasks_config():
    seen = _in_fresh_process(
        "import json, sys\n"
        "from orchestrator.config.task import get_task\n"
        "get_task('regression')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('orchestrator.tasks.'))))"
    )
    assert "orchestrator.tasks.regression.config" in seen
    others = ("orchestrator.tasks.detector", "orchestrator.tasks.rtdetr", "orchestrator.tasks.ram")
    assert not [m for m in seen if m.startswith(others)]


def test_a_name_without_a_module_of_its_own_loads_everything():
    # the sampler 'random' lives in random_search.py: found by the full discovery
    seen = _in_fresh_process(
        "import json\n"
        "from orchestrator.config.models import SAMPLERS\n"
        "print(json.dumps(['random' in SAMPLERS, SAMPLERS.get('random').__name__,"
        " sorted(SAMPLERS.names())]))"
    )
    assert seen[0] is True and seen[1] == "RandomSampler"
    assert seen[2] == ["cmaes", "gp", "grid", "nsga2", "nsga3", "qmc", "random", "tpe"]


def test_unknown_and_private_names_are_not_imported(monkeypatch):
    pkg = types.ModuleType("orch_fake_pkg")
    pkg.__path__ = []  # a package with no modules: every lookup misses
    monkeypatch.setitem(sys.modules, "orch_fake_pkg", pkg)
    registry: Registry[int] = Registry("thing", ("orch_fake_pkg",))
    registry.add("one", 1)
    assert "one" in registry and registry.get("one") == 1
    assert "two" not in registry
    assert "__init__" not in registry and "a.b" not in registry
    with pytest.raises(KeyError, match="unknown thing 'two'; known: one"):
        registry.get("two")

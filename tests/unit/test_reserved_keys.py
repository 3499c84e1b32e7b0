"""Every ``orch.*`` key the package writes is a constant of ``orchestrator/reserved.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator
from orchestrator import reserved

PACKAGE = Path(orchestrator.__file__).parent


def orch_literals(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each string literal (or f-string part) that starts with ``orch.``."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith(reserved.PREFIX)
    ]


def test_finder_sees_plain_single_quoted_and_f_string_literals() -> None:
    source = (
        '"""Docs may name ``orch.epoch``."""\n'
        'a = {"orch.epoch": 1}\n'
        "b = x.get('orch.step')\n"
        'c = f"orch.{name}"\n'
        "# a comment about 'orch.seed'\n"
        'd = "not orch.here"\n'
    )
    assert orch_literals(source) == [(2, "orch.epoch"), (3, "orch.step"), (4, "orch.")]


def test_no_orch_literal_outside_reserved() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "reserved.py"
        for line, text in orch_literals(path.read_text())
    ]
    assert not found, "orch.* keys belong in orchestrator/reserved.py:\n" + "\n".join(found)


def test_reserved_keys_are_distinct() -> None:
    keys = {
        name: value
        for name, value in vars(reserved).items()
        if name.isupper() and name not in ("PREFIX", "STOP_PREFIX")
    }
    assert all(v.startswith(reserved.PREFIX) for v in keys.values())
    assert len(set(keys.values())) == len(keys)

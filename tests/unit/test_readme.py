"""The README's error examples are what the CLI prints today (tests/unit/test_readme.py
runs them): a changed message or a longer ``allowed:`` list fails here, not for a user."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _examples() -> list[tuple[str, str]]:
    """``($ command, the error line after it)`` pairs of the README's error block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("Errors in a sweep file are reported", 1)[1].split("```", 2)[1]
    lines = [ln for ln in block.splitlines() if ln.strip()]
    pairs = []
    for command, output in zip(lines[::2], lines[1::2], strict=True):
        assert command.startswith("$ orchestrate ") and output.startswith("error: ")
        pairs.append((command[2:].split("  #")[0].strip(), output))
    return pairs


def test_readme_error_examples_equal_the_real_messages(tmp_path: Path) -> None:
    examples = _examples()
    assert len(examples) == 2
    # the first example is the shipped file with one key misspelt, at the path it names
    (tmp_path / "search_spaces").mkdir()
    shipped = (ROOT / "search_spaces/rtdetr.yaml").read_text()
    typo, n = re.subn(r"(?m)^  weight:", "  weigth:", shipped)
    assert n == 1
    (tmp_path / "search_spaces/rtdetr.yaml").write_text(typo)
    # the second runs on the shipped file as it is
    for cwd, (command, expected) in zip((tmp_path, ROOT), examples, strict=True):
        argv = [a.strip("'") for a in command.split()[1:]]
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == expected

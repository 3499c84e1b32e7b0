"""Generated datasets written once per sweep folder, safely under concurrent callers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

#: written last into a generated folder: its presence means the folder is complete
MARKER = "COMPLETE"


def generate_once(final: Path, write: Callable[[Path], None]) -> None:
    """Make ``final`` by calling ``write(folder)``, unless a completed copy is there.

    Each caller (trial processes may race the driver) writes into its own temporary folder
    beside ``final`` and renames it into place; the loser of a rename race discards its copy
    and uses the winner's, so nobody ever reads a half-written dataset.
    """
    if (final / MARKER).exists():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        write(tmp)
        (tmp / MARKER).write_text("ok\n")
        try:
            os.rename(tmp, final)
        except OSError:
            # another process renamed first (target exists, non-empty)
            if not (final / MARKER).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

"""What data a trial used, as MLflow dataset inputs: name, digest, source path, size.

Each task describes its train and validation sets once per sweep, in the driver, after
``prepare_data`` (``TaskSpec.describe``); every trial's run gets the same records through
the journal (``inputs`` op), so MLflow's Dataset column names the data of each run and a
changed file shows as a changed digest.

A digest is the first 8 hex digits of a SHA-256 (MLflow's own datasets use 8 too) over the
label file's bytes and the image folder's listing (names and sizes, not pixels: hashing a
COCO-sized folder's contents would cost minutes per sweep). Torch- and MLflow-free.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DIGEST_CHARS = 8
TRAINING = "training"
VALIDATION = "validation"


def dataset_record(
    name: str,
    context: str,
    source: str | Path,
    profile: dict[str, Any],
    *,
    files: Iterable[str | Path] = (),
    folders: Iterable[str | Path] = (),
    extra: Any = None,
) -> dict[str, Any]:
    """One dataset input: ``name`` used in ``context`` (``training``/``validation``),
    found at ``source``, with ``profile`` (counts) shown by MLflow; the digest covers the
    bytes of ``files``, the listing of ``folders`` and ``extra`` (any JSON value)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).name.encode())
        digest.update(Path(path).read_bytes())
    for folder in folders:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file():
                digest.update(f"{entry.name}:{entry.stat().st_size};".encode())
    if extra is not None:
        digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return {
        "name": name,
        "context": context,
        "digest": digest.hexdigest()[:DIGEST_CHARS],
        "source_type": "local",
        "source": json.dumps({"uri": str(source)}),
        "profile": json.dumps(profile, sort_keys=True),
    }

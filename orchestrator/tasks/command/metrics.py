"""Epoch records of an external command, read while it runs, mapped to metric names.

A *record* is one JSON object (a line of a JSON-lines log such as RT-DETR's ``log.txt``) or
the named groups of one stdout line matched by a regex. A *field* expression picks a number
out of a record: ``train_loss``, ``test_coco_eval_bbox[0]`` (list index, negative allowed),
``a.b[1]`` (nested objects). The sweep file maps project metric names to fields.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Field = tuple[str | int, ...]

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]|(\.)")


def parse_field(expr: str) -> Field:
    """``"test_coco_eval_bbox[0]"`` -> ``("test_coco_eval_bbox", 0)``; ValueError if malformed."""
    parts: list[str | int] = []
    pos = 0
    expect_name = True  # at the start and after a '.'
    while pos < len(expr):
        m = _SEGMENT.match(expr, pos)
        if m is None:
            break
        name, index, _dot = m.groups()
        if name is not None:
            if not expect_name:
                break
            parts.append(name.strip())
            expect_name = False
        elif index is not None:
            if expect_name:
                break
            parts.append(int(index))
        else:
            if expect_name:
                break
            expect_name = True
        pos = m.end()
    if pos != len(expr) or expect_name or not parts or not isinstance(parts[0], str):
        raise ValueError(
            f"not a field expression: {expr!r}; write a key, optionally with list indices "
            "and nested keys, e.g. train_loss, test_coco_eval_bbox[0], stats.bbox[1]"
        )
    return tuple(parts)


def lookup(record: Any, field: Field) -> float | None:
    """The number at ``field`` in ``record``; None when it is absent or not a number.

    Strings are parsed (regex groups are strings; ``nan``/``inf`` are kept as such: a NaN
    loss is exactly what the ``nonfinite`` rule must see).
    """
    node = record
    for part in field:
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                return None
            node = node[part]
        else:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
    if isinstance(node, bool) or node is None:
        return None
    if isinstance(node, int | float):
        return float(node)
    if isinstance(node, str):
        try:
            return float(node.strip())
        except ValueError:
            return None
    return None


class MetricMap:
    """``{metric name: field}``, applied to records.

    ``report_on`` names a key that marks a record as an epoch (None: every record is one).
    """

    def __init__(self, metrics: Mapping[str, str], report_on: str | None = None) -> None:
        self.fields = {name: parse_field(expr) for name, expr in metrics.items()}
        self.report_on = report_on
        self._pending: dict[str, Any] = {}

    def feed(self, record: Mapping[str, Any]) -> dict[str, float] | None:
        """The metrics of the epoch ``record`` completes, or None if it completes none.

        Records that are not epochs (per-iteration training lines of MMEngine's
        ``scalars.json``) are merged into the next epoch record, later values winning, so
        an epoch report carries the last training loss logged before its evaluation.
        """
        merged = {**self._pending, **record}
        if self.report_on is not None and self.report_on not in record:
            self._pending = merged
            return None
        self._pending = {}
        out: dict[str, float] = {}
        for name, field in self.fields.items():
            value = lookup(merged, field)
            if value is not None:
                out[name] = value
        return out


class JsonLinesTail:
    """New complete lines of a growing JSON-lines file, parsed, between polls.

    ``path`` may be a glob (MMEngine writes under a timestamped folder): the first match,
    in sorted order, is followed once it appears. A partly written last line waits for its
    newline. Lines that are not a JSON object are counted in :attr:`skipped`.

    ``before`` (path -> size) is what an earlier attempt of a resumed trial wrote: only what
    is written after it is read, and a glob follows the first match that is new or has
    grown (MMEngine starts a new timestamped folder per run; RT-DETR appends to its log).
    """

    def __init__(self, path: str, before: Mapping[str, int] | None = None) -> None:
        self.pattern = path
        self.path: Path | None = None
        self.offset = 0
        self._partial = b""
        self.skipped = 0
        self.before = dict(before or {})

    def _resolve(self) -> Path | None:
        if self.path is None:
            if glob.has_magic(self.pattern):
                matches = sorted(glob.glob(self.pattern))
            else:
                matches = [self.pattern] if Path(self.pattern).exists() else []
            for match in matches:
                size = self.before.get(str(Path(match)))
                if size is None or Path(match).stat().st_size > size:
                    self.path = Path(match)
                    self.offset = size or 0
                    break
        return self.path

    def poll(self) -> list[dict[str, Any]]:
        path = self._resolve()
        if path is None:
            return []
        try:
            with path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        records = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                # json accepts NaN/Infinity, which Python's json.dumps writes for NaN losses
                value = json.loads(line)
            except ValueError:
                value = None
            if isinstance(value, dict):
                records.append(value)
            else:
                self.skipped += 1
        return records


class RegexRecords:
    """Records from output lines: the named groups of ``pattern`` where it matches."""

    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern)

    def match(self, line: str) -> dict[str, Any] | None:
        m = self.regex.search(line)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}

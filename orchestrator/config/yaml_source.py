"""YAML reading that keeps where each key came from, so errors can point at a line.

PyYAML silently keeps the last of two duplicated keys; a sweep file with a duplicated key
almost always hides a typo, so it is an error here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError

KeyPath = tuple[str, ...]


@dataclass
class Source:
    """A parsed document plus ``key path -> (file, line)`` for every mapping key."""

    data: Any
    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    #: key paths set by ``-o`` overrides, mapped to the override text that set them
    overridden: dict[KeyPath, str] = field(default_factory=dict)

    def where(self, path: KeyPath) -> tuple[str, int | None]:
        """The file (or ``-o ...``) and line that best explain ``path``."""
        for key, text in self.overridden.items():
            if key[: len(path)] == path:  # an override set this key or something below it
                return f"-o {text}", None
        for n in range(len(path), 0, -1):
            prefix = path[:n]
            if prefix in self.overridden:
                return f"-o {self.overridden[prefix]}", None
            if prefix in self.lines:
                return self.file, self.lines[prefix]
        return self.file, None


def read_yaml(path: str | Path) -> Source:
    """Parse ``path`` into a :class:`Source`; every failure is a :class:`ConfigError`."""
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise ConfigError("file not found", file=name)
    if p.is_dir():
        raise ConfigError("is a directory, expected a sweep YAML file", file=name)
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (byte {exc.start})", file=name) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> Source:
    """Parse YAML ``text``; ``name`` is used in error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        line = None
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=name, line=line) from None
    if node is None:
        raise ConfigError("file is empty, expected a mapping of sweep sections", file=name)
    source = Source(data=None, file=name)
    source.data = _build(node, (), source)
    if not isinstance(source.data, dict):
        raise ConfigError(
            "top level must be a mapping of sweep sections",
            file=name,
            line=node.start_mark.line + 1,
            value=source.data,
            has_value=True,
        )
    return source


def _build(node: yaml.Node, path: KeyPath, source: Source) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, str | int | float | bool):
                raise ConfigError(
                    "mapping keys must be scalars",
                    file=source.file,
                    key=_dotted(path),
                    line=key_node.start_mark.line + 1,
                )
            skey = str(key)
            kpath = (*path, skey)
            if skey in out:
                raise ConfigError(
                    f"duplicated key (first at line {source.lines[kpath]})",
                    file=source.file,
                    key=_dotted(kpath),
                    line=key_node.start_mark.line + 1,
                )
            source.lines[kpath] = key_node.start_mark.line + 1
            out[skey] = _build(value_node, kpath, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path, source) for item in node.value]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _dotted(path: KeyPath) -> str:
    return ".".join(path)

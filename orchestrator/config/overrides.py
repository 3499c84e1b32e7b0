"""``-o key=value`` overrides applied to the raw YAML data before validation."""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.config.yaml_source import KeyPath, Source
from orchestrator.errors import ConfigError


def apply_overrides(source: Source, overrides: list[str]) -> None:
    """Set each ``dotted.key=value`` in ``source.data``; values are parsed as YAML.

    Keys of ``space`` contain dots themselves (``space.loss.weight.cls``), so below
    ``space`` the rest of the path names one parameter, optionally followed by one
    attribute of it (``space.optim.lr.float=[1e-5, 1e-3]``). Elsewhere a key the file
    already spells with dots is matched whole (``task.options.optimizer.lr=...``).
    """
    for text in overrides:
        key, sep, raw_value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("override must look like key=value", file=f"-o {text}")
        try:
            value = yaml.safe_load(raw_value) if raw_value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"value is not valid YAML ({exc})", file=f"-o {text}") from None
        path = _split(key, source.data)
        _set(source.data, path, value, text)
        source.overridden[path] = text


def _split(key: str, data: dict[str, Any]) -> KeyPath:
    parts = key.split(".")
    if parts[0] != "space" or len(parts) < 2:
        return _split_existing(parts, data)
    space = data.get("space") or {}
    rest = parts[1:]
    for n in range(len(rest), 0, -1):
        name = ".".join(rest[:n])
        if name in space:
            return ("space", name, *rest[n:])
    return ("space", ".".join(rest))


def _split_existing(parts: list[str], data: Any) -> KeyPath:
    """Split on dots, except where the file already has a key with dots in it (a command's
    ``task.options: {optimizer.lr: ...}``): the longest such key at each level wins."""
    path: list[str] = []
    node = data
    while parts:
        keys = node if isinstance(node, dict) else {}
        n = next((k for k in range(len(parts), 1, -1) if ".".join(parts[:k]) in keys), 1)
        name = ".".join(parts[:n])
        path.append(name)
        node = node.get(name) if isinstance(node, dict) else None
        parts = parts[n:]
    return tuple(path)


def _set(data: dict[str, Any], path: KeyPath, value: Any, text: str) -> None:
    node: Any = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[: i + 1])
            raise ConfigError(
                f"cannot set {'.'.join(path)}: {where} is not a mapping",
                file=f"-o {text}",
                value=child,
                has_value=True,
            )
        node = child
    node[path[-1]] = value

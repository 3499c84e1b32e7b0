"""Load a sweep file: YAML -> overrides -> pydantic -> cross-field checks.

Every problem is reported as a :class:`~orchestrator.errors.ConfigError` naming the file,
line, key path, rule and value; several problems are reported together.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from orchestrator.config.models import SweepConfig
from orchestrator.config.overrides import apply_overrides
from orchestrator.config.registry import KindRegistry
from orchestrator.config.task import get_task
from orchestrator.config.yaml_source import KeyPath, Source, read_yaml
from orchestrator.errors import ConfigError, ConfigErrors, OrchestratorError


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read, override and validate the sweep file at ``path``.

    Raises :class:`ConfigErrors` (one or more :class:`ConfigError`) on any problem.
    Imports neither torch, Ray nor MLflow.
    """
    source = read_yaml(path)
    apply_overrides(source, overrides or [])
    return validate_source(source)


def validate_source(source: Source) -> SweepConfig:
    """Validate already-parsed data; see :func:`load_sweep`."""
    data = source.data
    model = _model_for(data, source)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigErrors(_convert(exc, source, model)) from None
    from orchestrator.config.checks import check_sweep

    errors = check_sweep(config, source)
    if errors:
        raise ConfigErrors(errors)
    return config


def _model_for(data: dict[str, Any], source: Source) -> type[SweepConfig]:
    task = data.get("task")
    if not isinstance(task, dict):
        file, line = source.where(("task",))
        rule = "required section is missing" if task is None else "must be a mapping"
        raise ConfigErrors(
            [ConfigError(rule, file=file, line=line, key="task", value=task, has_value=True)]
        )
    kind = task.get("kind")
    try:
        get_task(kind)  # a built-in, or an installed plugin (loaded and checked now)
    except (KeyError, OrchestratorError) as exc:
        file, line = source.where(("task", "kind"))
        rule = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        raise ConfigErrors(
            [
                ConfigError(
                    str(rule).replace(f"unknown task kind {kind!r}", "unknown task kind"),
                    file=file,
                    line=line,
                    key="task.kind",
                    value=kind,
                    has_value=True,
                )
            ]
        ) from None
    return typed_model(kind)


@functools.cache
def typed_model(kind: str) -> type[SweepConfig]:
    """SweepConfig with ``task`` and ``loss`` typed by the task's own config models."""
    spec = get_task(kind)
    loss_model = spec.loss_model()
    return create_model(
        f"SweepConfig_{kind}",
        __base__=SweepConfig,
        task=(spec.config_model(), ...),
        loss=(loss_model, loss_model()),
    )


def _convert(exc: ValidationError, source: Source, model: type[BaseModel]) -> list[ConfigError]:
    out: list[ConfigError] = []
    seen: set[tuple[str, str]] = set()
    errors = exc.errors(include_url=False)
    # a value that may be one object or a list of them (``objective``) fails both union
    # members; when the user wrote one object, its own errors are the useful ones
    object_errors = {
        _render(_data_path(e["loc"], source.data)) for e in errors if len(e["loc"]) > 2
    }
    errors = [
        e
        for e in errors
        if not (
            e["type"] == "list_type"
            and isinstance(e.get("input"), dict)
            and any(
                k.startswith(_render(_data_path(e["loc"], source.data)) + ".")
                for k in object_errors
            )
        )
    ]
    for err in errors:
        path = _data_path(err["loc"], source.data)
        key = _render(path)
        rule = _rule(err, path, model, source.data)
        if (key, rule) in seen:
            continue
        seen.add((key, rule))
        file, line = source.where(path)
        # our own validators already put the offending values into the rule text
        has_value = err["type"] not in ("missing", "extra_forbidden") and ", got " not in rule
        out.append(
            ConfigError(
                rule, file=file, line=line, key=key, value=err.get("input"), has_value=has_value
            )
        )
    return out


def _data_path(loc: tuple[int | str, ...], data: Any) -> KeyPath:
    """Drop the union-member / discriminator names pydantic adds to ``loc``."""
    path: list[str] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and str(part) in node:
            path.append(str(part))
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(f"[{part}]")
            node = node[part]
        elif isinstance(part, str) and not _is_member(part, node, last=i == len(loc) - 1):
            path.append(part)  # a missing or unknown key: name it
            node = None
    return tuple(path)


def _is_member(part: str, node: Any, *, last: bool) -> bool:
    # pydantic names union members like 'Objective', 'list[Objective]', 'tagged-union[...]'
    # or by their tag (the ``kind`` written, or the default variant's); none of those is a
    # key of the data. A missing or unknown key ends ``loc``; a member name never does.
    return part[:1].isupper() or "[" in part or (isinstance(node, dict) and not last)


def _render(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += part if part.startswith("[") or not out else "." + part
    return out


def _rule(err: Any, path: KeyPath, model: type[BaseModel], data: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = known_keys(model, path[:-1], data)
        close = difflib.get_close_matches(path[-1], known, n=1) if known else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = f"; allowed: {', '.join(sorted(known))}" if known else ""
        return f"unknown key{hint}{listing}"
    if kind == "missing":
        return "required key is missing"
    msg: str = err["msg"]
    return msg.removeprefix("Value error, ")


def known_keys(model: type[BaseModel], path: KeyPath, data: Any = None) -> list[str]:
    """Field names (by alias) allowed at ``path`` inside ``model``; [] when unknown.

    ``data`` is the validated input: where a section is one of several variants (a union
    tagged by ``kind``, or a registry's entry) its ``kind`` picks the variant.
    """
    current: Any = model
    node = data
    for part in path:
        if part.startswith("["):
            node = _index(node, part)
            continue
        fields = _fields(current, node)
        node = node.get(part) if isinstance(node, dict) else None
        if part in fields:
            current = fields[part]
        elif _is_dict_of_models(current):
            current = _is_dict_of_models(current)
        else:
            return []
    return list(_fields(current, node))


def _index(node: Any, part: str) -> Any:
    i = int(part[1:-1])
    return node[i] if isinstance(node, list) and i < len(node) else None


def _fields(tp: Any, node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in _models_in(tp, node):
        # a section whose keys come from a registry (``stopping.divergence``)
        m = m.fields_model() if hasattr(m, "fields_model") else m
        for name, info in m.model_fields.items():
            out[info.alias or name] = _annotation(info)
    return out


def _annotation(info: Any) -> Any:
    # a registry-typed field keeps its registry in the metadata pydantic strips off
    registry = next((m for m in info.metadata if isinstance(m, KindRegistry)), None)
    return registry or info.annotation


def _models_in(tp: Any, node: Any) -> list[type[BaseModel]]:
    if isinstance(tp, KindRegistry):
        chosen = tp.model_for(node)
        return [chosen] if chosen else [cls for _, cls in tp.items()]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        registry = next((m for m in tp.__metadata__ if isinstance(m, KindRegistry)), None)
        if registry is not None:
            return _models_in(registry, node)
    if origin in (typing.Union, types.UnionType, typing.Annotated, list):
        members = [m for arg in typing.get_args(tp) for m in _models_in(arg, node)]
        kind = node.get("kind") if isinstance(node, dict) else None
        tagged = [m for m in members if kind in _kinds(m)]
        return tagged or members
    return []


def _kinds(model: type[BaseModel]) -> tuple[Any, ...]:
    """The ``kind`` values a union member accepts (its ``Literal``)."""
    info = model.model_fields.get("kind")
    if info is None or typing.get_origin(info.annotation) is not Literal:
        return ()
    return typing.get_args(info.annotation)


def _is_dict_of_models(tp: Any) -> Any:
    for candidate in [tp, *typing.get_args(tp)]:
        if typing.get_origin(candidate) is dict:
            value = typing.get_args(candidate)[1]
            if _models_in(value, None):
                return value
    return None

"""Placeholders in a command line: ``{optim.lr}``, ``{loss.weight.giou}``, ``{trial.dir}``.

Python-format-like on purpose (familiar, and shell ``$VAR`` stays literal): ``{name}`` is
replaced by the value of ``name``; ``{{`` and ``}}`` are literal braces; any other brace is
an error, so a typo never reaches the training script silently. Values are rendered so
that the YAML/literal parsers of training repos (RT-DETR's ``-u``, MMDetection's
``--cfg-options``) read back the same number.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: a placeholder name: dotted words (``loss.weight.giou``, ``env.DATA_ROOT``, ``trial.dir``)
_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*"
_TOKEN = re.compile(r"\{\{|\}\}|\{(" + _NAME + r")\}|[{}]")


class TemplateError(ValueError):
    """A malformed template or a placeholder without a value."""


@dataclass(frozen=True)
class Placeholder:
    """One ``{name}`` found in a template string."""

    name: str
    start: int


def placeholders(text: str) -> list[Placeholder]:
    """Every placeholder of ``text``; raises :class:`TemplateError` on a stray brace."""
    return [p for p in _scan(text) if isinstance(p, Placeholder)]


def _scan(text: str) -> Iterator[Placeholder | str]:
    """Literal text and placeholders of ``text``, in order."""
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos:
            yield text[pos : m.start()]
        token = m.group(0)
        if token in ("{{", "}}"):
            yield token[0]
        elif m.group(1) is not None:
            yield Placeholder(m.group(1), m.start())
        else:
            raise TemplateError(
                f"stray {token!r} at position {m.start()} of {text!r}: a placeholder is "
                "{section.key} (letters, digits, _ - .); write {{ or }} for a literal brace"
            )
        pos = m.end()
    if pos < len(text):
        yield text[pos:]


def format_value(value: Any) -> str:
    """``value`` as command-line text that YAML and Python literal parsers read back.

    A float keeps every digit (``repr``) and always has a ``.`` before its exponent:
    PyYAML (RT-DETR's ``-u`` parser) reads ``1e-05`` as a *string* but ``1.0e-05`` as a
    float.
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, dict | list):
        raise TemplateError(f"a placeholder needs a single value, got a section {value!r}")
    return str(value)


def render(text: str, values: Mapping[str, Any], *, quote: bool = False) -> str:
    """``text`` with every placeholder replaced; ``quote`` shell-quotes each value.

    Raises :class:`TemplateError` naming the first placeholder ``values`` lacks.
    """
    out: list[str] = []
    for part in _scan(text):
        if isinstance(part, str):
            out.append(part)
            continue
        if part.name not in values:
            raise TemplateError(f"unknown placeholder {{{part.name}}} in {text!r}")
        rendered = format_value(values[part.name])
        out.append(shlex.quote(rendered) if quote else rendered)
    return "".join(out)

"""Declarative ``when:`` conditions: evaluation order, cycles and activity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.config.models import ParamSpec


def find_cycle(params: Mapping[str, ParamSpec]) -> list[str] | None:
    """A list ``[a, b, ..., a]`` of parameters whose conditions form a cycle, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for parent in params[name].when or {}:
            if parent not in params:
                continue
            if state.get(parent) == 1:
                return [*stack[stack.index(parent) :], parent]
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in params:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def evaluation_order(params: Mapping[str, ParamSpec]) -> list[str]:
    """Parameters ordered so each comes after every parameter its condition names.

    File order is kept where conditions allow, so sampling is reproducible.
    Assumes no cycle (see :func:`find_cycle`).
    """
    order: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        for parent in params[name].when or {}:
            if parent in params:
                place(parent)
        placed.add(name)
        order.append(name)

    for name in params:
        place(name)
    return order


def is_active(spec: ParamSpec, sampled: Mapping[str, Any]) -> bool:
    """True when every parameter named in ``spec.when`` was sampled with a listed value."""
    for parent, allowed in (spec.when or {}).items():
        if parent not in sampled or sampled[parent] not in allowed:
            return False
    return True

"""Cross-field checks of ``loss.weighting`` (docs/loss-weighting.md), run before anything starts.

:class:`~orchestrator.tasks.base.LossConfig` checks its fields alone; whether a name is a loss
component, and whether shares can ever be used, depends on the task and on ``space``.
"""

from __future__ import annotations

import difflib
from typing import Any

from orchestrator.config.models import SweepConfig
from orchestrator.config.task import get_task
from orchestrator.config.yaml_source import Source
from orchestrator.errors import ConfigError

_SHARE = "loss.share."


def weighting_errors(config: SweepConfig, source: Source) -> list[ConfigError]:
    """Every ``loss.weighting`` problem of ``config``: unknown component names, shares or a
    balance reference that no trial can use, an incomplete set of shares."""
    components = get_task(config.task.kind).components
    loss = config.loss
    errors: list[ConfigError] = []

    def error(path: tuple[str, ...], rule: str, value: Any = None, has_value: bool = True) -> None:
        file, line = source.where(path)
        errors.append(
            ConfigError(
                rule, file=file, line=line, key=".".join(path), value=value, has_value=has_value
            )
        )

    def not_component(name: str) -> str:
        close = difflib.get_close_matches(name, components, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(components)
        return f"not a loss component of task {config.task.kind!r}{hint}; components: {listing}"

    modes = _possible(config, "loss.weighting", loss.weighting)
    searched_shares = [k for k in config.space if k.startswith(_SHARE)]

    unknown = [name for name in loss.share if name not in components]
    for name in unknown:
        error(("loss", "share", name), not_component(name), name)
    for key in searched_shares:
        name = key[len(_SHARE) :]
        if name not in components:
            error(("space", key), not_component(name), name)
    for reference in _possible(config, "loss.balance_reference", loss.balance_reference):
        if reference is not None and reference not in components:
            path = ("loss", "balance_reference")
            if "loss.balance_reference" in config.space:
                path = ("space", "loss.balance_reference")
            error(path, not_component(reference), reference)

    if "target_share" not in modes:
        if loss.share:
            error(("loss", "share"), _only_with("target_share", modes), dict(loss.share))
        for key in searched_shares:
            error(("space", key), _only_with("target_share", modes), has_value=False)
    else:
        missing = [c for c in components if c not in loss.share]
        # a misspelt share already has its error; the component it missed is the same typo
        if missing and not unknown:
            error(
                ("loss", "share"),
                f"target_share needs a share for every component (the fallback when "
                f"loss.share.<c> is searched); missing: {', '.join(missing)}",
                dict(loss.share),
            )
    if "balance" not in modes and (
        loss.balance_reference is not None or "loss.balance_reference" in config.space
    ):
        error(
            ("loss", "balance_reference"),
            _only_with("balance", modes),
            loss.balance_reference,
        )
    return errors


def _possible(config: SweepConfig, key: str, fixed: Any) -> list[Any]:
    """The values ``key`` can take in some trial: the file's, or the searched choices."""
    spec = config.space.get(key)
    if spec is None or spec.choice is None:
        return [fixed]
    # a conditional parameter falls back to the file's value when its condition is false
    return [*spec.choice, fixed] if spec.when else list(spec.choice)


def _only_with(mode: str, modes: list[Any]) -> str:
    taken = ", ".join(str(m) for m in modes)
    return f"applies only with loss.weighting: {mode}, which no trial uses (weighting: {taken})"

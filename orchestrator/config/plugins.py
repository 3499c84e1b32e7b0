"""Task plugins: a ``task.kind`` that no built-in task has is looked up by name in the
``orchestrator.tasks`` entry-point group of the installed packages (docs/plugins.md).

Only the named plugin is loaded, when its kind is first asked for; its entry point names a
:class:`~orchestrator.config.task.TaskSpec` in a torch-free module, checked here like a built-in
one before any sweep-file validation uses it.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import OrchestratorError

#: the entry-point group a package declares its tasks in (``name = "module:TASK"``)
GROUP = "orchestrator.tasks"


class PluginError(OrchestratorError):
    """An installed task plugin that cannot serve: it does not load, or is not a task."""


def plugin_names() -> list[str]:
    """The task kinds installed packages declare (nothing is imported)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_plugin(kind: str, spec_type: type[Any]) -> Any | None:
    """The ``spec_type`` instance the entry point ``kind`` names, checked; None when no
    installed package declares ``kind``. Raises :class:`PluginError` naming the package."""
    from importlib.metadata import entry_points

    from orchestrator.config.task import LossConfig, TaskConfig

    found = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    if not found:
        return None
    ep = found[0]
    where = f"task plugin {kind!r} ({ep.value}, package {_package(ep)})"
    if len(found) > 1:
        raise PluginError(
            f"{where}: task kind {kind!r} is declared by {len(found)} installed packages: "
            + ", ".join(sorted(_package(e) for e in found))
        )
    try:
        spec: Any = ep.load()
    except Exception as exc:
        raise PluginError(f"{where} does not load: {type(exc).__name__}: {exc}") from None
    if not isinstance(spec, spec_type):
        raise PluginError(f"{where} must name a {spec_type.__name__}, got {type(spec).__name__}")
    config, loss = spec.config_model(), spec.loss_model()
    default = (
        config.model_fields["kind"].default
        if isinstance(config, type) and issubclass(config, TaskConfig)
        else None
    )
    if default != kind:
        raise PluginError(
            f"{where}: its config must subclass TaskConfig with kind defaulting to {kind!r}, "
            f"got {getattr(config, '__name__', config)!r} with kind={default!r}"
        )
    if not (isinstance(loss, type) and issubclass(loss, LossConfig)):
        raise PluginError(
            f"{where}: its loss must subclass LossConfig, got {getattr(loss, '__name__', loss)!r}"
        )
    return spec


def _package(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return str(getattr(dist, "name", None) or "?")

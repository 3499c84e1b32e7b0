"""One registry per extension point: a name in the sweep file -> the class that serves it.

A registered class is its own pydantic config model (``kind: Literal["asha"] = "asha"`` and
its settings) and builds the implementation from itself, importing torch, Ray or Optuna only
inside that method; so looking entries up (``orchestrate validate``, the CLI's choices) stays
cheap. The built-in entries register themselves when their modules are imported; a registry
imports them (every module of its ``discover`` packages) on its first lookup, so a new
built-in is one new module, and a plugin is one ``REGISTRY.register(cls)`` call.

A sweep-file field typed :meth:`Registry.field` is validated against the registry at
validation time (not when the model class was created), so entries registered later, from a
plugin or a test, are accepted like the built-in ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, SerializeAsAny, ValidationError, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

E = TypeVar("E")
M = TypeVar("M", bound=BaseModel)


class Registry(Generic[E]):
    """``name -> entry`` for one extension point, filled lazily from ``discover``.

    ``discover`` names packages whose every module is imported on first use (``pkg.*``
    means the ``config`` module of every sub-package of ``pkg`` is imported instead: a task
    package keeps its torch code beside a torch-free ``config`` module).
    """

    def __init__(self, what: str, discover: tuple[str, ...] = ()) -> None:
        self.what = what
        self._discover = discover
        self._entries: dict[str, E] = {}
        self._loaded = not discover
        self._lock = threading.RLock()

    def add(self, name: str, entry: E) -> E:
        """Register ``entry`` as ``name``; a second, different entry of the name is an error."""
        with self._lock:
            old = self._entries.get(name)
            if old is not None and old is not entry and _qualname(old) != _qualname(entry):
                raise ValueError(f"{self.what} {name!r} is registered twice: {old!r}, {entry!r}")
            self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forget ``name`` (a test's plugin, after the test)."""
        with self._lock:
            self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, in registration order (built-ins first)."""
        self._load()
        return list(self._entries)

    def get(self, name: str) -> E:
        """The entry ``name``; ``KeyError`` that lists the known names."""
        if self._load_named(name):
            return self._entries[name]
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r}; known: {self.known()}") from None

    def known(self) -> str:
        return ", ".join(sorted(self.names()))

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and self._load_named(name):
            return True
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, E]]:
        self._load()
        return list(self._entries.items())

    def _load_named(self, name: str) -> bool:
        """Whether ``name`` is registered, importing only its own built-in module if it has
        one (``<package>.<name>`` or ``<package>.<name>.config``): a trial process that
        looks up its task kind does not import every other task's config (about 0.5 s of
        a fresh process). Entries of other names come with the full :meth:`_load`."""
        if name in self._entries:
            return True
        if self._loaded or not name.isidentifier() or name.startswith("_"):
            return False
        for package in self._discover:
            module = f"{package.removesuffix('.*')}.{name}"
            if package.endswith(".*"):
                module += ".config"
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # ``<package>.<name>`` is no package
                found = False
            if found:
                importlib.import_module(module)
                if name in self._entries:
                    return True
        return False

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for package in self._discover:
                for module in _modules(package):
                    importlib.import_module(module)


def _modules(package: str) -> list[str]:
    sub_configs = package.endswith(".*")
    pkg = importlib.import_module(package.removesuffix(".*"))
    out = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{pkg.__name__}.{info.name}"
        if not sub_configs:
            out.append(name)
        elif info.ispkg and importlib.util.find_spec(f"{name}.config") is not None:
            out.append(f"{name}.config")
    return out


def _qualname(entry: Any) -> str:
    return f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', repr(entry))}"


class KindRegistry(Registry[type[M]]):
    """A registry of config-model classes told apart by their ``kind`` field.

    Each class declares ``kind: Literal["name"] = "name"``; :meth:`register` reads the name
    from that default, so it is written once.
    """

    def __init__(
        self,
        what: str,
        base: type[Any],
        discover: tuple[str, ...] = (),
        default: str | None = None,
    ) -> None:
        super().__init__(what, discover)
        self.base = base
        self.default = default

    def register(self, cls: type[M]) -> type[M]:
        """Class decorator: register ``cls`` under its ``kind`` default."""
        kind = cls.model_fields["kind"].default
        if not isinstance(kind, str) or not issubclass(cls, self.base):
            raise TypeError(
                f"a {self.what} must subclass {self.base.__name__} and default 'kind' to its "
                f"name, got {cls.__name__} with kind={kind!r}"
            )
        self.add(kind, cls)
        return cls

    def default_factory(self) -> Callable[[], M]:
        """Builds the default entry (``default``) with its default settings."""

        def make() -> M:
            assert self.default is not None, f"{self.what} has no default"
            return self.get(self.default)()

        return make

    def field(self) -> Any:
        """The annotation of a sweep-file field that holds one of this registry's entries."""
        # built at run time from ``base``, which static typing cannot follow
        annotated: Any = Annotated
        as_any: Any = SerializeAsAny
        return annotated[as_any[self.base], WrapValidator(self._validate), self]

    def _validate(self, value: Any, handler: Any) -> Any:
        if isinstance(value, self.base):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "registry_type",
                "must be a mapping with 'kind' ({known}), got {value!r}",
                {"known": self.known(), "value": value},
            )
        kind = value.get("kind", self.default)
        if kind not in self:
            raise ValidationError.from_exception_data(
                self.what,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "registry_kind",
                            "unknown {what}; known: {known}",
                            {"what": self.what, "known": self.known()},
                        ),
                        loc=("kind",),
                        input=kind,
                    )
                ],
            )
        assert isinstance(kind, str)
        return self.get(kind).model_validate(value)

    def model_for(self, data: Any) -> type[M] | None:
        """The class ``data`` (a mapping with ``kind``) validates against, if known."""
        kind = data.get("kind", self.default) if isinstance(data, dict) else self.default
        return self.get(kind) if isinstance(kind, str) and kind in self else None

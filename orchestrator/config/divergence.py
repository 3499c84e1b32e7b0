"""``stopping.divergence`` in the sweep file: one entry per registered rule. Torch-free.

Every rule is on by default and can be written as a bool (``spike: false`` disables it,
``nonfinite: true`` is the form older sweep files use) or as a mapping of its thresholds::

    stopping:
      divergence:
        spike: {factor: 3, patience: 3}
        plateau: false

A rule is one module of :mod:`orchestrator.divergence` that registers a :class:`RuleConfig`
subclass (its thresholds) in :data:`RULES`; the subclass builds the detector. The keys this
section accepts are the registered names, looked up when a file is validated, so a rule
registered later (a plugin) is accepted too. The defaults are tuned on
``bench/curves/generated.jsonl`` (see ``docs/stopping.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

from pydantic import Field, RootModel, SerializeAsAny, create_model, model_validator
from pydantic_core import PydanticUndefined

from orchestrator.config.base import StrictModel
from orchestrator.config.registry import Registry


class DivergenceDetector(Protocol):
    """What a rule builds (:class:`orchestrator.divergence.base.DivergenceDetector`, which
    sits above this package)."""

    def check(self, history: Sequence[Mapping[str, Any]]) -> Any: ...


#: the sweep's primary objective, ``(metric, mode)``, when a rule needs it
Objective = tuple[str, Literal["min", "max"]] | None


class RuleConfig(StrictModel):
    """A rule's settings: ``enabled``, the bool shorthand, and how to build the detector."""

    #: the rule's key under ``stopping.divergence``
    name: ClassVar[str]
    #: tie order when two rules fire on the same report: lower first
    priority: ClassVar[int] = 100
    #: the detector class; its keyword arguments are this model's fields but ``enabled``
    detector: ClassVar[type[DivergenceDetector]]

    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _bool_shorthand(cls, data: Any) -> Any:
        return {"enabled": data} if isinstance(data, bool) else data

    def build(self, objective: Objective) -> DivergenceDetector:
        """The detector with these thresholds; ``objective`` is the sweep's primary one."""
        return self.detector(**self.settings())

    def settings(self) -> dict[str, Any]:
        """The thresholds as the detector's keyword arguments."""
        return self.model_dump(exclude={"enabled"})


#: ``stopping.divergence.<name>`` -> its :class:`RuleConfig` subclass
RULES: Registry[type[RuleConfig]] = Registry("divergence rule", ("orchestrator.divergence",))


def register_rule(cls: type[RuleConfig]) -> type[RuleConfig]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    RULES.add(cls.name, cls)
    return cls


@functools.cache
def _sections(entries: tuple[tuple[str, type[RuleConfig]], ...]) -> type[StrictModel]:
    fields: dict[str, Any] = {n: (model, Field(default_factory=model)) for n, model in entries}
    return create_model("DivergenceRules", __base__=StrictModel, **fields)


class DivergenceConfig(RootModel[dict[str, SerializeAsAny[RuleConfig]]]):
    """Divergence rules applied to every report; a trial stops at the first that fires.

    Every registered rule has an entry (its defaults unless the file sets it), in tie order.
    """

    root: dict[str, SerializeAsAny[RuleConfig]] = Field(default_factory=dict)

    @classmethod
    def fields_model(cls) -> type[StrictModel]:
        """A model with one field per registered rule (what the section accepts now)."""
        return _sections(tuple(sorted(RULES.items(), key=lambda item: item[1].priority)))

    @model_validator(mode="wrap")
    @classmethod
    def _by_registry(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, DivergenceConfig):
            return data
        if (
            isinstance(data, dict)
            and data
            and all(isinstance(v, RuleConfig) for v in data.values())
        ):
            return handler(data)  # already validated rules (a copy, an assignment)
        if data is None or data is PydanticUndefined:  # ``DivergenceConfig()``: defaults
            data = {}
        sections = cls.fields_model().model_validate(data)
        return handler({name: getattr(sections, name) for name in type(sections).model_fields})

    def rules(self) -> list[RuleConfig]:
        """The enabled rules, in tie order."""
        return [rule for rule in self.root.values() if rule.enabled]

    def enabled(self) -> list[str]:
        """Names of the rules that are on, in tie order."""
        return [rule.name for rule in self.rules()]

    def __getattr__(self, name: str) -> Any:
        # ``config.stopping.divergence.spike``: each rule is an attribute, like a field
        root = self.__dict__.get("root")
        if root is not None and name in root:
            return root[name]
        raise AttributeError(name)

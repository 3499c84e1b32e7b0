"""Errors the user can act on. Each message names where, the rule and the offending value."""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Base class of the errors the CLI turns into one line and exit code 2."""


class ConfigError(OrchestratorError):
    """A sweep file (or an override) breaks a rule.

    Rendered as ``FILE[:LINE]: KEY: RULE, got VALUE`` so a user can jump to the spot.
    """

    def __init__(
        self,
        rule: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        value: Any = None,
        has_value: bool = False,
    ) -> None:
        self.rule = rule
        self.file = file
        self.key = key
        self.line = line
        self.value = value
        self.has_value = has_value
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<sweep>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.key:
            parts.append(self.key)
        message = self.rule
        if self.has_value:
            message += f", got {_short(self.value)}"
        parts.append(message)
        return ": ".join(parts)


class ConfigErrors(OrchestratorError):
    """Several ConfigErrors found in one pass, so a user fixes them all at once."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CurvesError(OrchestratorError):
    """A recorded-curves file (or MLflow export) for ``orchestrate replay`` is unusable.

    The message names the file and line (or the experiment) and what is wrong.
    """


class CompareError(OrchestratorError):
    """``orchestrate compare`` cannot do what was asked: an unknown experiment or run, a
    sweep without trials, a run without a model to promote. The message names which."""

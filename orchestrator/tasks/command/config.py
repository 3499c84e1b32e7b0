"""Config of the ``command`` task (torch-free: ``orchestrate validate`` imports only this).

The sweep's ``loss:`` section belongs to the external script: any keys, fixed values that
``space:`` may search and the command may template. Which metrics a trial reports is
decided by ``task.metrics``, not by the registry.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from orchestrator.config.base import StrictModel
from orchestrator.config.task import LossConfig, TaskConfig, TaskSpec, register_task
from orchestrator.errors import ConfigError
from orchestrator.search_space.space import flatten
from orchestrator.tasks.command.metrics import parse_field
from orchestrator.tasks.command.template import TemplateError, format_value, placeholders

#: placeholders filled per trial (besides hyperparameters, ``env.NAME`` and ``repo``)
TRIAL_KEYS = (
    "trial.id",
    "trial.name",
    "trial.dir",
    "trial.work_dir",
    "trial.checkpoint_dir",
    "trial.resume_from",
)
#: the placeholder that is empty on a first attempt (nothing to resume from)
RESUME_FROM = "trial.resume_from"
#: hyperparameters the sweep reads for a command trial itself (logged as ``sweep.<key>``)
SWEEP_OWN = ("train.epochs",)
#: (path in the sweep file, rule, offending value)
Problem = tuple[tuple[str, ...], str, Any]
#: a named argument's value: text (templated), a number, a flag (true/false), a list
ArgValue = str | int | float | bool | None | list[str | int | float]


class JsonLinesLog(StrictModel):
    """Epoch records are the JSON objects of a file the command appends to (RT-DETR's
    ``log.txt``, MMEngine's ``vis_data/scalars.json``)."""

    kind: Literal["json_lines"] = "json_lines"
    #: templated; relative = under the trial's work dir; may be a glob (first match)
    path: str = "log.txt"
    #: a record is an epoch only when it has this key (MMEngine: the evaluation's
    #: ``coco/bbox_mAP``); others are merged into the next epoch. null: every record
    report_on: str | None = None


class StdoutRegexLog(StrictModel):
    """Epoch records are the named groups of output lines (stdout and stderr) matching
    ``pattern``, e.g. ``'Epoch (?P<epoch>\\d+): loss=(?P<loss>\\S+) mAP=(?P<map>\\S+)'``."""

    kind: Literal["stdout_regex"]
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        if not compiled.groupindex:
            raise ValueError("needs named groups, e.g. (?P<train_loss>\\S+), got none")
        return v


MetricsLog = Annotated[JsonLinesLog | StdoutRegexLog, Field(discriminator="kind")]


@dataclass(frozen=True)
class ArgumentEntry:
    """One ``args`` or ``options`` entry as argument templates. An entry with a value whose
    templates all render empty is left out whole, flag included: ``r: "{trial.resume_from}"``
    is ``-r PATH`` on a restart and nothing on a first attempt."""

    #: the argument templates, in order (``--config``, ``a.yml``; or ``--config=a.yml``)
    items: tuple[str, ...]
    #: the templates of its value; empty for a bare switch (``--amp``), which is always kept
    values: tuple[str, ...] = ()


class CommandTaskConfig(TaskConfig):
    """Run ``command`` per trial and read its epochs from ``log`` as it runs."""

    kind: Literal["command"] = "command"
    #: the argument list (one list item = one argument, placeholders allowed); a single
    #: string only with ``shell: true``
    command: list[str] | str
    #: named arguments after ``command``: ``--key value`` (a one-letter key: ``-k value``);
    #: true = the bare flag, false/null = left out, a list = ``--key v1 v2``; templated
    args: dict[str, ArgValue] = Field(default_factory=dict)
    #: how ``args`` are written: ``--key value`` (two arguments) or ``--key=value`` (one)
    args_style: Literal["--key value", "--key=value"] = "--key value"
    #: ``key=value`` config overrides after ``args``, introduced by ``options_flag``;
    #: nested mappings are flattened to dotted keys (``optimizer.lr``); templated
    options: dict[str, Any] = Field(default_factory=dict)
    #: the flag before ``options``: ``-u`` (RT-DETR), ``--cfg-options`` (MMDetection);
    #: null = bare ``key=value`` items (Hydra)
    options_flag: str | None = None
    #: run ``command`` (a string) through ``/bin/sh -c``; placeholder values are quoted
    shell: bool = False
    #: the user's training repository, as ``{repo}``; set it with ``-o task.repo=PATH``
    repo: str | None = None
    #: working directory (templated); null = the trial's own ``<trial dir>/work``
    cwd: str | None = None
    #: extra environment variables (values templated)
    env: dict[str, str] = Field(default_factory=dict)
    log: MetricsLog = Field(default_factory=JsonLinesLog)
    #: project metric name (``train/...`` or ``val/...``) -> field of a record
    metrics: dict[str, str] = Field(min_length=1)
    #: stop the command when no new epoch arrived for this long (from its start, too)
    stall_timeout_s: float = Field(3600.0, gt=0)
    #: stop the command when it ran this long in all; null = no limit
    timeout_s: float | None = Field(None, gt=0)
    #: seconds between SIGTERM and SIGKILL when a trial is stopped
    grace_s: float = Field(10.0, ge=0)
    #: seconds between looks at the log
    poll_s: float = Field(1.0, gt=0, le=60)
    #: output lines kept for MLflow when the command fails or is stopped
    tail_lines: int = Field(40, ge=1, le=1000)
    #: the script's checkpoint to resume from (templated glob, relative to the trial's work
    #: dir): on a restarted trial, ``{trial.resume_from}`` is its newest match
    resume_file: str = "{trial.checkpoint_dir}/*"

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list) and not v:
            raise ValueError("must name a program, got []")
        if isinstance(v, str) and not v.strip():
            raise ValueError("must name a program, got ''")
        for text in [v] if isinstance(v, str) else v:
            try:
                placeholders(text)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("args")
    @classmethod
    def _args(cls, v: dict[str, ArgValue]) -> dict[str, ArgValue]:
        for key in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", key):
                raise ValueError(
                    f"an argument name is letters, digits, _ . - (written without its "
                    f"leading dashes), got {key!r}"
                )
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in flatten(v).items():
            if isinstance(value, dict | list):
                raise ValueError(f"options.{key}: give a single value, got {value!r}")
        names = _dotted_names(v)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            # {a.b: 1} beside {a: {b: 2}}: one of them would be lost without a word
            raise ValueError(f"options: {', '.join(twice)} given twice (dotted and nested)")
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: dict[str, str]) -> dict[str, str]:
        for name, expr in v.items():
            if not name.startswith(("train/", "val/")) or name in ("train/", "val/"):
                raise ValueError(
                    f"metric names start with train/ or val/ (what MLflow logs and the "
                    f"divergence rules read), got {name!r}"
                )
            parse_field(expr)
        return v

    @model_validator(mode="after")
    def _shell(self) -> CommandTaskConfig:
        if isinstance(self.command, str) and not self.shell:
            raise ValueError(
                "command is a string: give an argument list (safe, no quoting), or set "
                "shell: true to run it through /bin/sh"
            )
        if isinstance(self.command, list) and self.shell:
            raise ValueError("shell: true takes command as one string, got a list")
        if isinstance(self.log, StdoutRegexLog):
            groups = set(re.compile(self.log.pattern).groupindex)
            for name, expr in self.metrics.items():
                root = parse_field(expr)[0]
                if root not in groups:
                    raise ValueError(
                        f"metrics.{name}: {expr!r} is not a named group of log.pattern "
                        f"(groups: {', '.join(sorted(groups))})"
                    )
        for text in self.templates().values():
            try:
                placeholders(text)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return self

    @field_validator("resume_file")
    @classmethod
    def _resume_file(cls, v: str) -> str:
        try:
            names = [p.name for p in placeholders(v)]
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        if RESUME_FROM in names:
            raise ValueError(
                f"{{{RESUME_FROM}}} is what this pattern finds, it cannot be part of it, got {v!r}"
            )
        return v

    def templates(self) -> dict[tuple[str, ...], str]:
        """Every templated string, by its path in the sweep file."""
        out: dict[tuple[str, ...], str] = {}
        if isinstance(self.command, str):
            out[("task", "command")] = self.command
        else:
            for i, text in enumerate(self.command):
                out[("task", "command", f"[{i}]")] = text
        if self.cwd is not None:
            out[("task", "cwd")] = self.cwd
        for key, value in self.env.items():
            out[("task", "env", key)] = value
        for key, arg in self.args.items():
            if isinstance(arg, str):
                out[("task", "args", key)] = arg
            elif isinstance(arg, list):
                for i, item in enumerate(arg):
                    if isinstance(item, str):
                        out[("task", "args", key, f"[{i}]")] = item
        for key, option in flatten(self.options).items():
            if isinstance(option, str):
                out[("task", "options", key)] = option
        if isinstance(self.log, JsonLinesLog):
            out[("task", "log", "path")] = self.log.path
        out[("task", "resume_file")] = self.resume_file
        return out

    def argument_templates(self) -> list[str]:
        """``args`` and ``options`` as argument templates, in order, after ``command``
        (every entry, also those an empty value will leave out)."""
        arguments, options = self.argument_entries()
        flag = [self.options_flag] if options and self.options_flag else []
        return (
            [item for entry in arguments for item in entry.items]
            + flag
            + [item for entry in options for item in entry.items]
        )

    def argument_entries(self) -> tuple[list[ArgumentEntry], list[ArgumentEntry]]:
        """``args`` and ``options`` as entries (the options without ``options_flag``)."""
        arguments: list[ArgumentEntry] = []
        for key, value in self.args.items():
            flag = ("-" if len(key) == 1 else "--") + key
            if value is None or value is False:
                continue
            if value is True:
                arguments.append(ArgumentEntry((flag,)))
                continue
            items = tuple(_literal(x) for x in (value if isinstance(value, list) else [value]))
            if self.args_style == "--key=value":
                arguments.append(ArgumentEntry((f"{flag}={' '.join(items)}",), items))
            else:
                arguments.append(ArgumentEntry((flag, *items), items))
        options = [
            ArgumentEntry((f"{key}={_literal(value)}",), (_literal(value),))
            for key, value in flatten(self.options).items()
        ]
        return arguments, options

    def reported_metrics(self) -> list[str]:
        """The metric names of ``metrics``: what objectives and rules may use."""
        return list(self.metrics)

    def trial_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters the command line, cwd, env or log path use; plus, marked
        ``sweep.``, ``train.epochs`` when untemplated: the sweep itself reads it (how many
        epochs the script should log), the script never sees it."""
        used = {p.name for text in self.templates().values() for p in placeholders(text)}
        params = {k: v for k, v in values.items() if k in used}
        for key in SWEEP_OWN:
            if key in values and key not in used:
                params[f"sweep.{key}"] = values[key]
        return params

    def sweep_problems(self, sweep: Any) -> list[Problem]:
        """Problems only visible with the whole sweep: placeholders without a value,
        searched keys the command never uses, more than one worker."""
        problems: list[Problem] = []
        values = {
            k: v
            for k, v in flatten(sweep.hyperparameters()).items()
            if not isinstance(v, dict | list)  # an empty section is not a value either
        }
        searched = set(sweep.space)
        known = set(values) | searched | set(TRIAL_KEYS) | {"repo"}
        used: set[str] = set()
        for path, text in self.templates().items():
            where = path[:-1] if path[-1].startswith("[") else path  # command[i] -> command
            for p in placeholders(text):
                used.add(p.name)
                if p.name.startswith("env.") or p.name in known:
                    continue
                inside = sorted(k for k in known if k.startswith(p.name + "."))
                if inside:
                    problems.append(
                        (
                            where,
                            f"{{{p.name}}} is a section, not a value; name one of its keys, "
                            f"e.g. {{{inside[0]}}}",
                            text,
                        )
                    )
                    continue
                close = difflib.get_close_matches(p.name, sorted(known), n=1)
                hint = f" (did you mean {{{close[0]}}}?)" if close else ""
                problems.append(
                    (
                        where,
                        f"unknown placeholder {{{p.name}}}{hint}: use a hyperparameter "
                        f"(loss.*, optim.*, batch.*, train.*, backend.*), a space key, "
                        f"{', '.join('{' + k + '}' for k in TRIAL_KEYS)}, {{repo}} or "
                        "{env.NAME}",
                        text,
                    )
                )
        for key in sorted(searched & used):
            if sweep.space[key].when and key not in values:
                problems.append(
                    (
                        ("space", key),
                        "is conditional and has no fixed value: trials where it is not "
                        f"sampled would have nothing to put in {{{key}}}; give it a value "
                        "in its section",
                        key,
                    )
                )
        for key in sorted(searched - used):
            problems.append(
                (
                    ("space", key),
                    "searched but never used by task.command, args, options, cwd, env or "
                    "log.path: every trial would run the same command; add "
                    f"{{{key}}} to the command",
                    key,
                )
            )
        weighting = getattr(sweep.loss, "weighting", "fixed")
        if weighting != "fixed":
            problems.append(
                (
                    ("loss", "weighting"),
                    "loss weighting is done by the built-in training loop; a command combines "
                    "its own losses (template its weights instead)",
                    weighting,
                )
            )
        if sweep.resources.workers != 1:
            problems.append(
                (
                    ("resources", "workers"),
                    "a command trial is one process: keep workers: 1, give it GPUs with "
                    "gpus_per_worker and let the command start its own workers (torchrun)",
                    sweep.resources.workers,
                )
            )
        return problems


def _dotted_names(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Every leaf's dotted name, repeats kept (``flatten`` keeps only the last)."""
    out: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        out += _dotted_names(value, name + ".") if isinstance(value, dict) and value else [name]
    return out


def _literal(value: Any) -> str:
    """A fixed (non-text) value as a template: written as placeholders' values are, and
    with braces escaped so it renders to itself."""
    if isinstance(value, str):
        return value
    return format_value(value).replace("{", "{{").replace("}", "}}")


class CommandLossConfig(LossConfig):
    """Loss settings of the external script: any keys (nested mappings of scalars), which
    the command templates (``{loss.weight.giou}``) and ``space:`` may search."""

    # the one open section: its keys are the script's own, unknown to this package
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @model_validator(mode="after")
    def _scalars(self) -> CommandLossConfig:
        # only the script's own keys; fields every LossConfig has are typed already
        for key, value in flatten(self.model_extra or {}).items():
            if isinstance(value, dict | list):
                raise ValueError(f"loss.{key}: give scalar values, got {value!r}")
        return self


def prepare_data(config: CommandTaskConfig, data_root: Path) -> None:
    """Driver-side check before any trial starts: ``{repo}`` and ``{env.NAME}`` resolve.

    ``validate`` accepts a file whose repo or variables are unset (they belong to the
    machine that runs the sweep); a sweep that would start trials without them stops here.
    """
    values: dict[str, Any] = {f"env.{k}": v for k, v in os.environ.items()}
    if config.repo is not None:
        values["repo"] = config.repo
    missing: list[str] = []
    for text in config.templates().values():
        for p in placeholders(text):
            if p.name not in values and (p.name == "repo" or p.name.startswith("env.")):
                missing.append(p.name)
    if "repo" in missing:
        raise ConfigError(
            "the command uses {repo} but it is not set: pass -o task.repo=/path/to/repo",
            key="task.repo",
        )
    if missing:
        names = sorted({m.removeprefix("env.") for m in missing})
        raise ConfigError(
            "the command uses environment variables that are not set here",
            key="task",
            value=names,
            has_value=True,
        )
    if config.repo is not None and not Path(config.repo).is_dir():
        raise ConfigError("is not a directory", key="task.repo", value=config.repo, has_value=True)


#: what a trial of this task reports (the task class reads the same names)
VAL_METRICS: tuple[str, ...] = ()
COMPONENTS: tuple[str, ...] = ()

register_task(
    "command",
    TaskSpec(
        config=CommandTaskConfig,
        loss=CommandLossConfig,
        impl="",
        prepare=prepare_data,
        val_metrics=VAL_METRICS,
        components=COMPONENTS,
        runner="orchestrator.training.command_trial:run_command_trial",
    ),
)

"""``command.json``: what a trial ran, for a person reading the trial folder later.

The argv and working directory are rendered again with every ``{env.X}`` left as its
placeholder: environment variables carry tokens and passwords, and the trial folder is
kept, copied and uploaded. The process itself runs with the real values.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from orchestrator.redact import mask_env_values
from orchestrator.tasks.command.config import ArgumentEntry, CommandTaskConfig
from orchestrator.tasks.command.template import render


def command_argv(task: CommandTaskConfig, values: dict[str, Any]) -> list[str]:
    """The trial's argv: the command, then its named arguments and options
    (``task.args``, ``task.options``); a string command runs under ``/bin/sh -c``."""
    named = named_arguments(task, values)
    if isinstance(task.command, str):
        line = " ".join([render(task.command, values, quote=True), *map(shlex.quote, named)])
        return ["/bin/sh", "-c", line]
    return [render(arg, values) for arg in task.command] + named


def named_arguments(task: CommandTaskConfig, values: dict[str, Any]) -> list[str]:
    """``task.args`` and ``task.options`` rendered; an entry whose value renders empty is
    left out with its flag (``-r {trial.resume_from}`` on a first attempt), and
    ``options_flag`` when no option is left."""
    arguments, options = task.argument_entries()

    def kept(entries: list[ArgumentEntry]) -> list[str]:
        out: list[str] = []
        for entry in entries:
            if entry.values and not any(render(v, values) for v in entry.values):
                continue
            out += [render(item, values) for item in entry.items]
        return out

    rendered_options = kept(options)
    flag = [task.options_flag] if rendered_options and task.options_flag else []
    return kept(arguments) + flag + rendered_options


def write_command_record(
    trial_dir: Path, task: CommandTaskConfig, values: dict[str, Any], work_dir: Path
) -> None:
    """Write ``trial_dir/command.json`` with environment values masked."""
    shown = mask_env_values(values)
    cwd = work_dir / render(task.cwd, shown) if task.cwd else work_dir
    record = {"argv": command_argv(task, shown), "cwd": str(cwd)}
    (trial_dir / "command.json").write_text(json.dumps(record))

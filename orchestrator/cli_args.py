"""Arguments several ``orchestrate`` subcommands share. Imported at CLI start-up: argparse only."""

from __future__ import annotations

import argparse

OVERRIDE_HELP = (
    "override a key, e.g. -o sweep.num_samples=20 "
    "-o 'space.optim.lr={float: [1e-5, 1e-3], log: true}' (repeatable)"
)


def add_overrides(p: argparse.ArgumentParser, help: str = OVERRIDE_HELP) -> None:
    """``-o/--override KEY=VALUE``, repeatable, into ``args.override``."""
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_sweep_file(p: argparse.ArgumentParser, help: str = OVERRIDE_HELP) -> None:
    """The sweep file positional and its ``-o`` overrides."""
    p.add_argument("file", help="sweep YAML file, e.g. search_spaces/rtdetr.yaml")
    add_overrides(p, help)


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts: a whole number >= 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value

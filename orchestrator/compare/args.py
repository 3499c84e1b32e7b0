"""The ``orchestrate compare`` arguments. Imported at CLI start-up: argparse only."""

from __future__ import annotations

import argparse

from orchestrator.cli_args import positive_int

DEFAULT_TOP = 5
DEFAULT_REASON = "chosen with orchestrate compare"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``compare`` subcommand."""
    p = sub.add_parser(
        "compare",
        help="report on a sweep's trials from MLflow (HTML + Markdown); promote a model",
        description="Read a sweep back from MLflow and write a self-contained HTML report "
        "(sortable trial table, loss curves, parallel coordinates, parameter importance, "
        "Pareto front, seed repeats with confidence intervals) and a Markdown summary. "
        "With --promote, point the registered model's 'best' alias at a trial instead.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--experiment", metavar="NAME", help="the newest sweep of this MLflow experiment"
    )
    which.add_argument(
        "--sweep",
        metavar="RUN_ID",
        help="the sweep with this parent run id (a trial's run id names its sweep too)",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db, as sweeps)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="where report.html and report.md go (default compare-<sweep>)"
    )
    p.add_argument(
        "--top",
        type=positive_int,
        default=DEFAULT_TOP,
        metavar="K",
        help=f"trials whose curves are drawn and listed (default {DEFAULT_TOP})",
    )
    p.add_argument(
        "--runs",
        nargs=2,
        metavar=("A", "B"),
        help="also compare two runs side by side (run ids, or trial names like trial-3)",
    )
    p.add_argument(
        "--promote",
        metavar="RUN_ID",
        help="set the sweep's registered model alias 'best' to this trial run's model "
        "(registering it if needed); writes no report",
    )
    p.add_argument(
        "--reason",
        default=DEFAULT_REASON,
        help="why, kept as a tag of the promoted model version",
    )

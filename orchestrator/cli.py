"""The ``orchestrate`` command line. Heavy libraries are imported only by the commands
that need them, so ``--help`` and ``validate`` start fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.errors import OrchestratorError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate",
        description="Loss- and batch-hyperparameter sweeps for detectors and taggers "
        "(Ray Tune + Optuna + Accelerate + MLflow).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_file(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", help="sweep YAML file, e.g. search_spaces/rtdetr.yaml")
        p.add_argument(
            "-o",
            "--override",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a key, e.g. -o sweep.num_samples=20 "
            "-o 'space.optim.lr={float: [1e-5, 1e-3], log: true}' (repeatable)",
        )

    sweep = sub.add_parser("sweep", help="run a sweep")
    with_file(sweep)
    validate = sub.add_parser("validate", help="check a sweep file without running anything")
    with_file(validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.file, args.override)
        if args.command == "sweep":
            return _sweep(args.file, args.override)
    except OrchestratorError as exc:
        print(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


def _validate(path: str, overrides: list[str]) -> int:
    from orchestrator.config import load_sweep
    from orchestrator.search_space.describe import describe

    config = load_sweep(path, overrides)
    print(f"{path}: OK")
    print(describe(config))
    return 0


def _sweep(path: str, overrides: list[str]) -> int:
    from orchestrator.config import load_sweep

    config = load_sweep(path, overrides)
    from orchestrator.tuning import run_sweep

    summary = run_sweep(config, sweep_file=path)
    return 0 if summary.best else 1


if __name__ == "__main__":
    sys.exit(main())

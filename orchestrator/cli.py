"""The ``orchestrate`` command line. Heavy libraries are imported only by the commands
that need them, so ``--help`` and ``validate`` start fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.cli_args import add_overrides, add_sweep_file, positive_int
from orchestrator.compare.args import add_parser as add_compare_parser
from orchestrator.config.models import SCHEDULERS
from orchestrator.errors import OrchestratorError
from orchestrator.launch.commands import add_parsers as add_launch_parsers
from orchestrator.launch.commands import run as run_launch

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate",
        description="Loss- and batch-hyperparameter sweeps for detectors and taggers "
        "(Ray Tune + Optuna + Accelerate + MLflow).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sweep = sub.add_parser("sweep", help="run a sweep")
    add_sweep_file(sweep)
    sweep.add_argument(
        "--repeat-top",
        type=positive_int,
        metavar="K",
        help="after the search, train the K best configurations again with new seeds "
        "(the file's final.top)",
    )
    sweep.add_argument(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="new seeds per repeated configuration (final.seeds, default 3)",
    )
    sweep.add_argument(
        "--dir",
        metavar="DIR",
        help="run the sweep in DIR instead of a new <sweep.dir>/<name>-<timestamp>; if DIR "
        "already holds this same sweep (same file and overrides), resume it instead of "
        "starting again, so a retried job continues its sweep (any other contents: error)",
    )
    validate = sub.add_parser("validate", help="check a sweep file without running anything")
    add_sweep_file(validate)
    resume = sub.add_parser(
        "resume",
        help="finish a sweep that was killed or interrupted",
        description="Continue the sweep of SWEEP_DIR: finished trials stay finished, "
        "unfinished ones run again in their MLflow child runs, the searcher keeps its "
        "history, and the sweep ends with its num_samples trials.",
    )
    resume.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the folder the sweep printed")
    resume.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="accept an edit of sweep.yaml's KEY since the sweep started (repeatable); only "
        "keys resume honours in full: tracking.flush_timeout_s, sweep.num_cpus, "
        "sweep.ray_address. Any other edit is refused",
    )
    sync = sub.add_parser(
        "sync",
        help="upload MLflow writes a sweep buffered while the server was unreachable",
    )
    sync.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the folder the sweep printed")
    sync.add_argument("--tracking-uri", help="upload here instead of the sweep's own URI")
    sync.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds (300)"
    )

    dashboard = sub.add_parser(
        "dashboard",
        help="open the sweep's Optuna study in optuna-dashboard (127.0.0.1)",
        description="Serve optuna-dashboard on the sweep's Optuna study (its journal file, "
        "or sweep.optuna_storage) on 127.0.0.1. Needs: pip install 'orchestrator[dashboard]'.",
    )
    dashboard.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the folder the sweep printed")
    dashboard.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (8080)")

    replay = sub.add_parser(
        "replay",
        help="replay recorded curves through the stopping rules and schedulers",
        description="Feed recorded learning curves (JSON Lines, or an MLflow experiment) "
        "report by report to the divergence rules and Ray's schedulers, and compare what "
        "each policy stops, when, why, and what compute it saves.",
    )
    replay.add_argument(
        "curves", nargs="?", help="curves file (.jsonl), e.g. bench/curves/generated.jsonl"
    )
    replay.add_argument("--config", help="sweep YAML whose stopping/objective settings to use")
    add_overrides(replay, "override a key of --config (repeatable)")
    replay.add_argument(
        "--from-mlflow",
        metavar="EXPERIMENT",
        help="read the trial runs of this MLflow experiment instead of a file",
    )
    replay.add_argument(
        "--tracking-uri",
        help="MLflow URI for --from-mlflow (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    replay.add_argument("--export", metavar="FILE", help="also write the curves read as JSONL")
    replay.add_argument(
        "--scheduler",
        choices=SCHEDULERS.names(),
        help="scheduler to compare (default: --config's, else asha)",
    )
    replay.add_argument(
        "--concurrency",
        type=positive_int,
        help="trials running at once (default: --config's sweep.max_concurrent, else 4)",
    )
    replay.add_argument(
        "--top-k",
        type=positive_int,
        default=3,
        help="how many of the best trials must survive (default 3)",
    )
    replay.add_argument("--metric", help="objective metric (default: --config's, else val/map)")
    replay.add_argument("--mode", choices=["min", "max"], help="objective mode")
    replay.add_argument("--json", action="store_true", help="print the scores as JSON")
    replay.add_argument(
        "--trials",
        action="store_true",
        help="list each trial the sweep's policy stopped: when and why",
    )
    add_compare_parser(sub)
    add_launch_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.file, args.override)
        if args.command == "sweep":
            repeat = [f"final.top={args.repeat_top}"] if args.repeat_top else []
            repeat += [f"final.seeds={args.seeds}"] if args.seeds else []
            return _sweep(args.file, [*args.override, *repeat], args.dir)
        if args.command == "replay":
            return _replay(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "resume":
            return _resume(args.sweep_dir, args.allow_change)
        if args.command == "sync":
            from orchestrator.tracking.sync import sync_command

            return sync_command(args.sweep_dir, args.tracking_uri, args.timeout)
        if args.command == "dashboard":
            from orchestrator.tuning.dashboard import dashboard_command

            return dashboard_command(args.sweep_dir, args.port)
        if args.command in ("launch", "jobs"):
            return run_launch(args)
    except OrchestratorError as exc:
        print(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`orchestrate validate F | head -1`): not our error; point
        # stdout at /dev/null so the interpreter's final flush does not raise again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return EXIT_USAGE


def _validate(path: str, overrides: list[str]) -> int:
    from orchestrator.config import load_sweep
    from orchestrator.config.describe import describe

    config = load_sweep(path, overrides)
    print(f"{path}: OK")
    print(describe(config))
    return 0


def _sweep(path: str, overrides: list[str], folder: str | None = None) -> int:
    from pathlib import Path

    from orchestrator.config import load_sweep

    config = load_sweep(path, overrides)
    from orchestrator.tuning.locations import check_locations

    check_locations(config)
    from orchestrator.tuning import run_sweep
    from orchestrator.tuning.runner import SweepInterrupted

    where: dict[str, Path] = {}
    if folder is not None:
        from orchestrator.tuning.sweep_folder import FolderPlan, plan_folder

        plan = plan_folder(Path(folder), config)
        if plan is FolderPlan.RESUME:
            print(f"{folder} holds this sweep already: resuming it")
            where["resume_dir"] = Path(folder)
        else:
            if plan is FolderPlan.RESTART:
                print(f"{folder} holds this sweep, stopped before its first trial: starting it")
            where["sweep_dir"] = Path(folder)
    try:
        summary = run_sweep(config, sweep_file=path, **where)
    except SweepInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    return 0 if summary.best else 1


def _resume(sweep_dir: str, allow_change: list[str]) -> int:
    from pathlib import Path

    from orchestrator.config import load_sweep
    from orchestrator.tuning.fingerprint import check_resume
    from orchestrator.tuning.locations import check_locations

    folder = Path(sweep_dir)
    resolved = folder / "sweep.yaml"
    if not (folder / "ray" / "tune").is_dir() or not resolved.is_file():
        raise OrchestratorError(
            f"{sweep_dir}: not a sweep folder (needs sweep.yaml and ray/tune/ written by "
            "`orchestrate sweep`)"
        )
    config = load_sweep(str(resolved))
    if not check_resume(config, folder, allow_change):
        print(f"note: {folder} predates fingerprints; edits to sweep.yaml cannot be checked")
    check_locations(config)
    from orchestrator.tuning import run_sweep
    from orchestrator.tuning.runner import SweepInterrupted

    try:
        summary = run_sweep(config, sweep_file=str(resolved), resume_dir=folder)
    except SweepInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    return 0 if summary.best else 1


def _replay(args: argparse.Namespace) -> int:
    from orchestrator.replay.command import ReplayOptions, run_replay

    run_replay(
        ReplayOptions(
            curves=args.curves,
            config=args.config,
            overrides=tuple(args.override),
            from_mlflow=args.from_mlflow,
            tracking_uri=args.tracking_uri,
            export=args.export,
            scheduler=args.scheduler,
            concurrency=args.concurrency,
            top_k=args.top_k,
            metric=args.metric,
            mode=args.mode,
            as_json=args.json,
            show_trials=args.trials,
        )
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from orchestrator.compare.command import CompareOptions, run_compare

    run_compare(
        CompareOptions(
            experiment=args.experiment,
            sweep=args.sweep,
            tracking_uri=args.tracking_uri,
            out=args.out,
            top=args.top,
            runs=tuple(args.runs) if args.runs else None,
            promote=args.promote,
            reason=args.reason,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

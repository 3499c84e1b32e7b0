"""Build and run the Ray Tune sweep: OptunaSearch + scheduler + trials + MLflow."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import yaml

from orchestrator.config.models import SweepConfig
from orchestrator.reserved import STOPPED_BY
from orchestrator.search_space.space import SearchSpace, flatten
from orchestrator.tasks import get_task
from orchestrator.tracking.uri import resolve_tracking_uri, ui_command
from orchestrator.tuning.placement import check_placement
from orchestrator.tuning.summary import (
    STOP_STEP,
    SweepSummary,
    TrialRow,
    best_trials,
    end_reason,
    render_summary,
)
from orchestrator.tuning.trainable import cpus_per_trial, make_trainable, trial_resources
from orchestrator.tuning.trial_end import read_decision

log = logging.getLogger(__name__)


def make_sweep_dir(config: SweepConfig) -> Path:
    """A new ``<sweep.dir>/<name>-<timestamp>`` folder (absolute)."""
    root = Path(config.sweep.dir).resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{config.name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{config.name}-{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def _init_ray(config: SweepConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    if config.sweep.ray_address:
        ray.init(
            address=config.sweep.ray_address, log_to_driver=False, logging_level=logging.WARNING
        )
        return
    # Logical CPUs are scheduling tokens: a 2-worker trial plus its coordinator needs
    # 2.1 of them, so a small machine is over-subscribed on purpose to fit max_concurrent.
    need = math.ceil(cpus_per_trial(config.resources) * config.sweep.max_concurrent)
    num_cpus = config.sweep.num_cpus or max(os.cpu_count() or 1, need)
    ray.init(
        num_cpus=num_cpus,
        log_to_driver=False,
        logging_level=logging.WARNING,
        include_dashboard=None,
    )


def _sampler(config: SweepConfig) -> Any:
    import optuna

    s = config.sweep.sampler
    if s.kind == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    return optuna.samplers.TPESampler(
        seed=s.seed,
        multivariate=s.multivariate,
        group=s.multivariate,  # conditional spaces need group=True to stay multivariate
        constant_liar=config.sweep.max_concurrent > 1,
        n_startup_trials=s.n_startup_trials,
    )


def run_sweep(
    config: SweepConfig,
    sweep_file: str | None = None,
    out: TextIO | None = None,
    callbacks: list[Any] | None = None,
    resume_dir: Path | None = None,
) -> SweepSummary:
    """Run the whole sweep in this process (the Ray driver) and return its summary.

    ``callbacks`` are extra Ray Tune callbacks (e.g. a benchmark's timers). ``resume_dir``
    continues the sweep of that folder (``orchestrate resume``): Tune's experiment state and
    the searcher's history are restored, finished trials stay finished, unfinished ones run
    again and continue their MLflow child runs. Raises :class:`SweepInterrupted` after a
    Ctrl-C, once the sweep's state is saved.
    """
    out = out or sys.stdout
    started = time.monotonic()
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # a report that announces a NaN stop has no objective; schedulers skip such reports
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune snapshots the experiment (trial states, searcher history) every 10 s by default;
    # what a kill -9 can lose is what happened since the last snapshot
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    optuna_quiet()

    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.search import ConcurrencyLimiter

    from orchestrator.divergence import build_rules
    from orchestrator.tracking.mlflow_tracker import SweepTracker
    from orchestrator.tuning.callbacks import FinishedMarks, ProgressTable, TrackingCallback
    from orchestrator.tuning.schedulers import build_scheduler
    from orchestrator.tuning.searcher import SweepSearch
    from orchestrator.tuning.stopper import DivergenceStopper

    if resume_dir is None:
        sweep_dir = make_sweep_dir(config)
        resolved_file = sweep_dir / "sweep.yaml"
        resolved_file.write_text(
            yaml.safe_dump(config.model_dump(by_alias=True, mode="json"), sort_keys=False)
        )
    else:
        sweep_dir = Path(resume_dir).resolve()
        resolved_file = sweep_dir / "sweep.yaml"
    data_root = Path(config.sweep.dir).resolve() / "data"
    verb = "Resuming sweep" if resume_dir else "Sweep"
    out.write(
        f"{verb} {config.name!r}: {config.sweep.num_samples} trials, task "
        f"{config.task.kind}, {config.resources.workers} worker(s) per trial\n"
    )
    out.write(f"Preparing data under {data_root} ...\n")
    out.flush()
    get_task(config.task.kind).prepare_data()(config.task, data_root)
    check_placement(config, out, _init_ray, sweep_file)  # exits 2 on what can never run

    tracker = None
    uri = None
    if config.tracking.enabled:
        uri = resolve_tracking_uri(config.tracking.uri)
        tracker = SweepTracker.open(
            uri, config.tracking.experiment or config.name, config.name, sweep_dir / "tracking"
        )
        tracker.start_sweep(
            params=flatten(config.hyperparameters()),
            tags={
                "orch.sweep_dir": str(sweep_dir),
                "orch.sweep_file": sweep_file or "",
                "orch.task": config.task.kind,
            },
        )
        if resume_dir is None:
            tracker.log_artifact(str(resolved_file))

    _init_ray(config)
    storage = str(sweep_dir / "ray")
    trainable = tune.with_resources(
        make_trainable(
            config.model_dump(by_alias=True, mode="json"),
            str(data_root),
            config.resources,
            storage,
        ),
        trial_resources(config.resources),
    )
    if resume_dir is not None:
        # the run config (callbacks, stopper, scheduler) comes back from the experiment
        # folder; the tracker inside it is this process's tracker of the same journal
        tuner = tune.Tuner.restore(
            str(sweep_dir / "ray" / "tune"),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    else:
        objectives = config.objectives
        metric: str | list[str] = [o.metric for o in objectives]
        mode: str | list[str] = [o.mode for o in objectives]
        if len(objectives) == 1:
            metric, mode = objectives[0].metric, objectives[0].mode
        search = SweepSearch(
            space=SearchSpace(config), metric=metric, mode=mode, sampler=_sampler(config)
        )
        scheduler = build_scheduler(config)
        if config.stopping.scheduler.kind != "none":
            scheduler.set_search_properties(config.primary.metric, config.primary.mode)

        primary = (config.primary.metric, config.primary.mode)
        stopper = DivergenceStopper(build_rules(config.stopping.divergence, primary))

        # result.json per trial: what Tune's ResultGrid (and a later resume) reads back
        tune_callbacks = [
            FinishedMarks(),
            JsonLoggerCallback(),
            ProgressTable(config.primary.metric, list(config.space), config.train.epochs, out=out),
        ]
        if tracker:
            tune_callbacks.insert(
                0,
                TrackingCallback(
                    tracker, config.train.epochs, config.hyperparameters(), config.task
                ),
            )
        tune_callbacks += list(callbacks or [])
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(search, max_concurrent=config.sweep.max_concurrent),
                scheduler=scheduler,
                num_samples=config.sweep.num_samples,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=storage,
                callbacks=tune_callbacks,
                stop=stopper,
                verbose=0,
                # only infrastructure failures reach Tune; the trainable ends deterministic ones
                failure_config=tune.FailureConfig(max_failures=config.sweep.max_retries),
            ),
        )
    interrupt = _InterruptWatch()
    try:
        with interrupt:
            grid = tuner.fit()
    except BaseException:
        _interrupted(tracker, config, sweep_dir, out)
        raise
    if interrupt.fired:
        _interrupted(tracker, config, sweep_dir, out)
        raise SweepInterrupted(sweep_dir)
    if tracker:
        # the table needs the trials' run ids, which exist once their creates are applied
        tracker.flush(config.tracking.flush_timeout_s)
    rows: list[TrialRow] = []
    for i in range(len(grid)):
        result = grid[i]
        rows.append(_row(result, tracker, config.train.epochs))
    rows.sort(key=lambda r: (len(r.trial), r.trial))
    objectives = config.objectives
    best = best_trials(rows, objectives)
    repeats: list[Any] = []
    if config.final is not None:
        from orchestrator.tuning.repeats import repeat_configs, summarise

        configs = repeat_configs(config, rows)
        if configs:
            out.write(
                f"Seed repeats: the best {len(configs) // config.final.seeds} configuration(s) "
                f"x {config.final.seeds} new seeds = {len(configs)} runs\n"
            )
            out.flush()
            repeat_interrupt = _InterruptWatch()
            try:
                with repeat_interrupt:
                    results = _fit_repeats(config, configs, trainable, storage, tracker, out)
            except BaseException:
                _interrupted(tracker, config, sweep_dir, out)
                raise
            if repeat_interrupt.fired:
                _interrupted(tracker, config, sweep_dir, out)
                raise SweepInterrupted(sweep_dir)
            repeats = summarise(config, rows, results)
    summary = SweepSummary(
        name=config.name,
        sweep_dir=str(sweep_dir),
        tracking_uri=uri,
        parent_run_id=tracker.parent_id if tracker else None,
        objectives=[o.model_dump() for o in objectives],
        trials=rows,
        best=best,
        wall_s=time.monotonic() - started,
        repeats=[asdict(r) for r in repeats],
    )
    (sweep_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, default=str))
    if tracker:
        _finish_parent(tracker, summary, sweep_dir)
    out.write(render_summary(summary, ui_command(uri) if uri else None))
    if repeats:
        from orchestrator.tuning.repeats import render_repeats

        out.write(render_repeats(repeats, config.primary.metric, best[0].trial if best else None))
    if tracker:
        _close_tracker(tracker, config, sweep_dir, out)
    out.flush()
    return summary


def _fit_repeats(
    config: SweepConfig,
    configs: list[dict[str, Any]],
    trainable: Any,
    storage: str,
    tracker: Any,
    out: TextIO,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Run the seed-repeat trials (a second Tune experiment, ``ray/repeats``, same MLflow
    parent); returns each trial's ``(config, last metrics)``."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.search import ConcurrencyLimiter

    from orchestrator.divergence import build_rules
    from orchestrator.tuning.callbacks import FinishedMarks, ProgressTable, TrackingCallback
    from orchestrator.tuning.fixed_search import FixedConfigs
    from orchestrator.tuning.stopper import DivergenceStopper

    path = str(Path(storage) / "repeats")
    if tune.Tuner.can_restore(path):  # a resumed sweep that was killed during its repeats
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True)
    else:
        primary = (config.primary.metric, config.primary.mode)
        callbacks: list[Any] = [
            FinishedMarks(),
            JsonLoggerCallback(),
            ProgressTable(config.primary.metric, [], config.train.epochs, out=out),
        ]
        if tracker:
            callbacks.insert(
                0,
                TrackingCallback(
                    tracker, config.train.epochs, config.hyperparameters(), config.task
                ),
            )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(
                    FixedConfigs(configs, config.primary.metric, config.primary.mode),
                    max_concurrent=config.sweep.max_concurrent,
                ),
                num_samples=len(configs),
            ),
            run_config=tune.RunConfig(
                name="repeats",
                storage_path=storage,
                callbacks=callbacks,
                stop=DivergenceStopper(build_rules(config.stopping.divergence, primary)),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=config.sweep.max_retries),
            ),
        )
    grid = tuner.fit()
    return [(dict(grid[i].config or {}), dict(grid[i].metrics or {})) for i in range(len(grid))]


class SweepInterrupted(Exception):
    """Ctrl-C: the sweep stopped cleanly and can be resumed from ``sweep_dir``."""

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__(f"sweep interrupted; resume it with: orchestrate resume {sweep_dir}")
        self.sweep_dir = sweep_dir


class _InterruptWatch:
    """Turn the first Ctrl-C into Tune's graceful stop, and remember that it happened.

    Tune's own SIGINT handler stops the run but leaves no trace the caller can read; it
    also listens to SIGUSR1, so ours records the interrupt and forwards it there. A second
    Ctrl-C raises KeyboardInterrupt as usual.
    """

    def __init__(self) -> None:
        self.fired = False
        self._previous: Any = None

    def __enter__(self) -> _InterruptWatch:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        self.fired = True
        sys.stderr.write("\nStopping the sweep and saving its state (Ctrl-C again to abort)...\n")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGUSR1)

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _interrupted(tracker: Any, config: SweepConfig, sweep_dir: Path, out: TextIO) -> None:
    """The parent run ends KILLED (``orchestrate resume`` sets it running again)."""
    if tracker:
        tracker.end_sweep({"orch.status": "interrupted"}, status="KILLED")
        _close_tracker(tracker, config, sweep_dir, out)


def _close_tracker(tracker: Any, config: SweepConfig, sweep_dir: Path, out: TextIO) -> None:
    if not tracker.flush(config.tracking.flush_timeout_s):
        out.write(
            f"MLflow is unreachable ({tracker.writer.last_error}): {tracker.pending} "
            f"writes are kept in {sweep_dir / 'tracking'}; upload them later with: "
            f"orchestrate sync {sweep_dir}\n"
        )
    tracker.close()


def _row(result: Any, tracker: Any, epochs: int) -> TrialRow:
    metrics = {**(result.metrics or {}), **read_decision(result.path)}
    cfg = result.config or {}
    runs = tracker.trial_runs if tracker else {}
    # the trial folder is named <trainable>_<trial_id>_<n>_<params>
    _, tid, number, *_ = [*Path(result.path).name.split("_", 3), "", "", ""]
    reason, detail = end_reason(cfg, metrics, result.error is not None, epochs)
    errored = result.error is not None or reason == "error"
    if result.error is not None:
        detail = str(result.error).strip().splitlines()[-1][:500] if str(result.error) else detail
    return TrialRow(
        trial=f"trial-{number}",
        trial_id=tid,
        status="error" if errored else "done",
        stop_reason=reason,
        stop_detail=detail,
        stop_step=_int(metrics.get(STOP_STEP)),
        stopped_by=str(metrics.get(STOPPED_BY, "")),
        params={k: v for k, v in cfg.items() if not k.startswith("orch.")},
        metrics={
            k: float(v)
            for k, v in metrics.items()
            if k.startswith(("train/", "val/")) and isinstance(v, int | float)
        },
        epochs=int(metrics.get("orch.epoch", 0) or 0),
        run_id=runs.get(tid),
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _finish_parent(tracker: Any, summary: SweepSummary, sweep_dir: Path) -> None:
    info: dict[str, Any] = {
        "orch.num_trials": len(summary.trials),
        "orch.num_stopped": sum(1 for r in summary.trials if r.stop_reason),
    }
    if summary.best:
        best = summary.best[0]
        info["orch.best_trial"] = best.trial
        info["orch.best_run_id"] = best.run_id
        for o in summary.objectives:
            value = best.metrics.get(o["metric"])
            if value is not None:
                info["best/" + o["metric"].replace("/", "_")] = value
    try:
        tracker.log_artifact(str(sweep_dir / "summary.json"))
        tracker.log_artifact(str(_write_csv(summary, sweep_dir / "trials.csv")))
        if (
            summary.best
            and summary.best[0].status == "done"
            and tracker.has_model(summary.best[0].trial_id)
        ):
            # applied by the tracker's writer, which tags the parent with the version
            tracker.register_best(summary.best[0].trial_id, summary.best[0].trial)
        tracker.end_sweep(info)
    except Exception as exc:
        log.warning("could not finish the MLflow parent run: %s", exc)


def _write_csv(summary: SweepSummary, path: Path) -> Path:
    """The trial table (parameters, final metrics, why each stopped) for MLflow's UI."""
    import csv

    params = sorted({k for r in summary.trials for k in r.params})
    metrics = sorted({k for r in summary.trials for k in r.metrics})
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "trial",
                "status",
                "stop_reason",
                "stop_detail",
                "epochs",
                "run_id",
                *params,
                *metrics,
            ]
        )
        for r in summary.trials:
            writer.writerow(
                [r.trial, r.status, r.stop_reason, r.stop_detail, r.epochs, r.run_id or ""]
                + [r.params.get(k, "") for k in params]
                + [r.metrics.get(k, "") for k in metrics]
            )
    return path


def optuna_quiet() -> None:
    """Optuna logs every trial at INFO; the progress table already shows them."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's ``group`` is marked experimental but is what conditional spaces need
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

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

from orchestrator.config.models import SweepConfig
from orchestrator.errors import OrchestratorError
from orchestrator.redact import mask_userinfo, strip_credentials, strip_userinfo
from orchestrator.reserved import (
    BEST_RUN_ID,
    BEST_TRIAL,
    EPOCH,
    NUM_STOPPED,
    NUM_TRIALS,
    PBT_LINEAGE,
    PREFIX,
    STATUS,
    STOPPED_BY,
    SWEEP_DIR,
    SWEEP_FILE,
    TASK,
)
from orchestrator.search_space.space import flatten
from orchestrator.tasks import get_task
from orchestrator.tracking.uri import resolve_tracking_uri, ui_command
from orchestrator.tuning.fingerprint import save_sweep
from orchestrator.tuning.placement import check_placement, cluster_address
from orchestrator.tuning.summary import (
    STOP_STEP,
    SweepSummary,
    TrialRow,
    best_trials,
    end_reason,
    render_summary,
)
from orchestrator.tuning.trainable import cpus_per_trial, make_trainable, trial_resources
from orchestrator.tuning.trial_end import LOST_FILE, read_decision, write_json
from orchestrator.tuning.tuners import REPEATS, SEARCH, TunerFactory

log = logging.getLogger(__name__)


def make_sweep_dir(config: SweepConfig) -> Path:
    """A new ``<sweep.dir>/<name>-<timestamp>`` folder (absolute)."""
    root = Path(config.sweep.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{config.name}-{stamp}"
    n = 1
    while True:
        try:  # not exists() then mkdir(): two sweeps started in the same second race there
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = root / f"{config.name}-{stamp}-{n}"


def _init_ray(config: SweepConfig, out: TextIO) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cluster_address(config)
    if address:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError) as exc:
            raise OrchestratorError(_join_failure(config, address, exc)) from exc
        return
    # Logical CPUs are scheduling tokens: a 2-worker trial plus its coordinator needs
    # 2.1 of them, so a small machine is over-subscribed on purpose to fit max_concurrent.
    need = math.ceil(cpus_per_trial(config.resources) * config.sweep.max_concurrent)
    num_cpus = config.sweep.num_cpus or max(os.cpu_count() or 1, need)
    context = ray.init(
        # "local", not None: None joins a `ray start` cluster running on this machine, if
        # any, and then refuses num_cpus (a traceback); RAY_ADDRESS was honoured above
        address="local",
        num_cpus=num_cpus,
        log_to_driver=False,
        logging_level=logging.WARNING,
        # False, not Ray's None ("if its packages are installed"): the same lean local Ray
        # whatever extras are installed, unless the sweep file asks for the dashboard
        include_dashboard=config.sweep.ray_dashboard,
    )
    if config.sweep.ray_dashboard:
        url = context.dashboard_url
        out.write(f"Ray dashboard: http://{url}\n" if url else "Ray dashboard: not running\n")


def _join_failure(config: SweepConfig, address: str, exc: BaseException) -> str:
    """One line for a cluster the driver cannot join (Ray retries for about 20 s first)."""
    source = "sweep.ray_address" if config.sweep.ray_address else "RAY_ADDRESS"
    why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # Ray's exception says neither whether the cluster is down nor whether its token
    # differs (token auth is Ray's default): name both
    return (
        f"{source}: cannot join the Ray cluster at {mask_userinfo(address)}: {why} (is it "
        "running? with token auth, RAY_AUTH_TOKEN must hold the cluster's token)"
    )


def run_sweep(
    config: SweepConfig,
    sweep_file: str | None = None,
    out: TextIO | None = None,
    callbacks: list[Any] | None = None,
    resume_dir: Path | None = None,
    sweep_dir: Path | None = None,
) -> SweepSummary:
    """Run the whole sweep in this process (the Ray driver) and return its summary.

    ``callbacks`` are extra Ray Tune callbacks (e.g. a benchmark's timers). ``resume_dir``
    continues the sweep of that folder (``orchestrate resume``): Tune's experiment state and
    the searcher's history are restored, finished trials stay finished, unfinished ones run
    again and continue their MLflow child runs. ``sweep_dir`` starts the sweep in that folder
    (``orchestrate sweep --dir``) instead of a new ``<sweep.dir>/<name>-<timestamp>``.
    Raises :class:`SweepInterrupted` after a Ctrl-C, once the sweep's state is saved.
    """
    out = out or sys.stdout
    started = time.monotonic()
    _tune_environment()
    sweep_dir = _sweep_dir(config, resume_dir, sweep_dir)
    data_root = _prepare_data(config, out, resumed=resume_dir is not None)
    check_placement(config, out, _init_ray, sweep_file)  # exits 2 on what can never run
    datasets = _describe_data(config, data_root) if config.tracking.enabled else []
    tracker, uri = _open_tracker(config, sweep_dir, sweep_file, resumed=resume_dir is not None)
    _init_ray(config, out)
    tuners = TunerFactory(
        config,
        _trainable(config, data_root, sweep_dir),
        str(sweep_dir / "ray"),
        tracker,
        out,
        datasets=datasets,
        tracking_uri=uri,
    )
    tuner = tuners.restore(SEARCH) if resume_dir is not None else tuners.search(callbacks)
    grid = _fit(tuner, tracker, config, sweep_dir, out)
    if tracker:
        # the table needs the trials' run ids, which exist once their creates are applied
        tracker.flush(config.tracking.flush_timeout_s)
    rows = _rows(grid, tracker, config.train.epochs)
    known = {r.trial_id for r in rows}
    repeats = _seed_repeats(config, rows, tuners, sweep_dir, out, known)
    if resume_dir is not None:
        _fail_lost_study_trials(config, sweep_dir)
        if tracker:
            _forget_lost_trials(tracker, known, sweep_dir, out)
    summary = SweepSummary(
        name=config.name,
        sweep_dir=str(sweep_dir),
        tracking_uri=strip_userinfo(uri) if uri else None,
        parent_run_id=tracker.parent_id if tracker else None,
        objectives=[o.model_dump() for o in config.objectives],
        trials=rows,
        best=best_trials(rows, config.objectives),
        wall_s=time.monotonic() - started,
        repeats=[asdict(r) for r in repeats],
    )
    _write_summary(summary, repeats, config, tracker, sweep_dir, out)
    return summary


def _tune_environment() -> None:
    """Tune settings of this driver process (set only where the user has not)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # a report that announces a NaN stop has no objective; schedulers skip such reports
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune snapshots the experiment (trial states, searcher history) every 10 s by default;
    # what a kill -9 can lose is what happened since the last snapshot
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # per-epoch trial checkpoints with a kept count force snapshots, which Tune warns about
    # on every report burst (three lines each, in the user's terminal); they cost ~0.07 s
    # per trial here (docs/performance.md)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    optuna_quiet()


def _sweep_dir(config: SweepConfig, resume_dir: Path | None, chosen: Path | None) -> Path:
    """A new sweep folder (``chosen``, or ``<sweep.dir>/<name>-<timestamp>``) holding the
    resolved ``sweep.yaml`` and what ``resume`` checks it against, or the resumed one."""
    if resume_dir is not None:
        return Path(resume_dir).resolve()
    sweep_dir = make_sweep_dir(config) if chosen is None else Path(chosen).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    save_sweep(config, sweep_dir)
    return sweep_dir


def _prepare_data(config: SweepConfig, out: TextIO, *, resumed: bool) -> Path:
    """Say what runs, then download/generate the task's data once for every trial."""
    data_root = Path(config.sweep.dir).resolve() / "data"
    verb = "Resuming sweep" if resumed else "Sweep"
    out.write(
        f"{verb} {config.name!r}: {config.sweep.num_samples} trials, task "
        f"{config.task.kind}, {config.resources.workers} worker(s) per trial\n"
    )
    out.write(f"Preparing data under {data_root} ...\n")
    out.flush()
    get_task(config.task.kind).prepare_data()(config.task, data_root)
    return data_root


def _open_tracker(
    config: SweepConfig, sweep_dir: Path, sweep_file: str | None, *, resumed: bool
) -> tuple[Any, str | None]:
    """The sweep's MLflow parent run (started, or continued on a resume) and its URI;
    ``(None, None)`` with ``tracking.enabled: false``."""
    if not config.tracking.enabled:
        return None, None
    from orchestrator.tracking.mlflow_tracker import SweepTracker

    uri = resolve_tracking_uri(config.tracking.uri)
    tracker = SweepTracker.open(
        uri, config.tracking.experiment or config.name, config.name, sweep_dir / "tracking"
    )
    tracker.start_sweep(
        params=flatten(config.hyperparameters()),
        tags={SWEEP_DIR: str(sweep_dir), SWEEP_FILE: sweep_file or "", TASK: config.task.kind},
    )
    if not resumed:
        tracker.log_artifact(str(sweep_dir / "sweep.yaml"))
    return tracker, uri


def _trainable(config: SweepConfig, data_root: Path, sweep_dir: Path) -> Any:
    """The trial function with the resources each trial reserves."""
    from ray import tune

    return tune.with_resources(
        make_trainable(
            # what is shipped to trials: credentials in URIs stay in this process
            strip_credentials(config.model_dump(by_alias=True, mode="json")),
            str(data_root),
            config.resources,
            str(sweep_dir / "ray"),
            config.stopping.scheduler.mutated_keys(dict(config.space)),
        ),
        trial_resources(config.resources),
    )


def _fit(tuner: Any, tracker: Any, config: SweepConfig, sweep_dir: Path, out: TextIO) -> Any:
    """Run one experiment to its end; a Ctrl-C (or any failure) leaves the parent run
    KILLED and raises (:class:`SweepInterrupted` for a Ctrl-C)."""
    interrupt = _InterruptWatch()
    # a local Ray is this sweep's alone: what Tune stages in its session folder can go
    staged = _staging_folders() if cluster_address(config) is None else None
    try:
        with interrupt:
            grid = tuner.fit()
    except BaseException:
        _interrupted(tracker, config, sweep_dir, out)
        raise
    if staged is not None:
        _remove_new_staging(staged)
    if interrupt.fired:
        _interrupted(tracker, config, sweep_dir, out)
        raise SweepInterrupted(sweep_dir)
    return grid


def _staging_folders() -> set[Path]:
    """The experiment folders Ray Tune stages in this node's session folder now
    (``/tmp/ray/session_*/artifacts/<timestamp>/<experiment>``)."""
    from ray.train.constants import _get_ray_train_session_dir

    return set(Path(_get_ray_train_session_dir()).glob("*/*"))


def _remove_new_staging(before: set[Path]) -> None:
    """Remove the staging folders an experiment that has ended left in Ray's session folder.

    Tune writes its driver-side files (each trial's ``params.pkl``, ``result.json``, the
    searcher's state) and trials' working dirs there and copies them into the sweep
    folder, which has them all once ``fit`` returns; the copies would stay in /tmp after
    the sweep (one folder per experiment, never cleaned by Ray)."""
    import shutil

    for folder in _staging_folders() - before:
        shutil.rmtree(folder, ignore_errors=True)
        if not any(folder.parent.iterdir()):
            folder.parent.rmdir()


def _rows(grid: Any, tracker: Any, epochs: int) -> list[TrialRow]:
    """One row per trial of ``grid``, in trial order."""
    rows = [_row(grid[i], tracker, epochs) for i in range(len(grid))]
    rows.sort(key=lambda r: (len(r.trial), r.trial))
    return rows


def _seed_repeats(
    config: SweepConfig,
    rows: list[TrialRow],
    tuners: TunerFactory,
    sweep_dir: Path,
    out: TextIO,
    known: set[str],
) -> list[Any]:
    """``final:``: train the best configurations again with new seeds (a second experiment,
    ``ray/repeats``, same MLflow parent) and rank them by their mean over seeds. Their
    trial ids are added to ``known``."""
    if config.final is None:
        return []
    from orchestrator.tuning.repeats import repeat_configs, summarise

    configs = repeat_configs(config, rows)
    if not configs:
        return []
    out.write(
        f"Seed repeats: the best {len(configs) // config.final.seeds} configuration(s) "
        f"x {config.final.seeds} new seeds = {len(configs)} runs\n"
    )
    out.flush()
    # a resumed sweep that was killed during its repeats continues them
    restored = tuners.can_restore(REPEATS)
    tuner = tuners.restore(REPEATS) if restored else tuners.repeats(configs)
    grid = _fit(tuner, tuners.tracker, config, sweep_dir, out)
    known.update(_trial_id(grid[i]) for i in range(len(grid)))
    results = [(dict(grid[i].config or {}), dict(grid[i].metrics or {})) for i in range(len(grid))]
    return summarise(config, rows, results)


def _write_summary(
    summary: SweepSummary,
    repeats: list[Any],
    config: SweepConfig,
    tracker: Any,
    sweep_dir: Path,
    out: TextIO,
) -> None:
    """``summary.json``, the parent run's end, and the table on ``out``."""
    (sweep_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, default=str))
    if tracker:
        _finish_parent(tracker, summary, sweep_dir)
    uri = summary.tracking_uri
    experiment_id = tracker.writer.state.experiment_id if tracker else None
    out.write(
        render_summary(summary, mask_userinfo(ui_command(uri, experiment_id)) if uri else None)
    )
    if repeats:
        from orchestrator.tuning.repeats import render_repeats

        best = summary.best[0].trial if summary.best else None
        out.write(render_repeats(repeats, config.primary.metric, best))
    if tracker:
        _close_tracker(tracker, config, sweep_dir, out)
    out.flush()


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
    """The parent run and the trials still running end KILLED (``orchestrate resume`` sets
    them running again)."""
    if tracker:
        tracker.end_running_trials("KILLED", {STATUS: "interrupted"})
        tracker.end_sweep({STATUS: "interrupted"}, status="KILLED")
        _close_tracker(tracker, config, sweep_dir, out)


def _close_tracker(tracker: Any, config: SweepConfig, sweep_dir: Path, out: TextIO) -> None:
    if not tracker.flush(config.tracking.flush_timeout_s):
        out.write(
            f"MLflow is unreachable ({tracker.writer.last_error}): {tracker.pending} "
            f"writes are kept in {sweep_dir / 'tracking'}; upload them later with: "
            f"orchestrate sync {sweep_dir}\n"
        )
    tracker.close()


def _forget_lost_trials(tracker: Any, known: set[str], sweep_dir: Path, out: TextIO) -> None:
    """A resumed sweep: runs of trials its experiments no longer know are ended and
    deleted (:meth:`SweepTracker.end_lost_trials`), their folders (kept: their own logs)
    get a ``lost.json`` saying why, and a line says so."""
    from orchestrator.tracking.mlflow_tracker import LOST_DETAIL

    lost = tracker.end_lost_trials(known)
    for tid in lost:
        for folder in (sweep_dir / "ray").glob(f"*/*_{tid}_*"):
            if folder.is_dir():
                write_json(str(folder / LOST_FILE), {"trial_id": tid, "reason": LOST_DETAIL})
    if lost:
        out.write(
            f"{len(lost)} trial(s) started after the sweep's last saved state were lost with "
            f"the driver and ran again as new trials; their MLflow runs are deleted: "
            f"{', '.join(lost)}\n"
        )


def _fail_lost_study_trials(config: SweepConfig, sweep_dir: Path) -> None:
    """Optuna trials still RUNNING once the search has ended belong to trials that were
    lost with an earlier driver (see :func:`_forget_lost_trials`): they end FAIL, so the
    study (and optuna-dashboard) shows no trial running forever."""
    import optuna
    from optuna.trial import TrialState

    from orchestrator.tuning.study_storage import open_storage, study_name

    try:
        study = optuna.load_study(
            study_name=study_name(sweep_dir),
            storage=open_storage(config.sweep.optuna_storage, sweep_dir),
        )
    except KeyError:  # a sweep from before studies were stored
        return
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)


def _folder_parts(result: Any) -> tuple[str, str]:
    """(trial id, trial number) from the trial folder, named
    ``<trainable>_<trial_id>_<n>_<params>``."""
    _, tid, number, *_ = [*Path(result.path).name.split("_", 3), "", "", ""]
    return tid, number


def _trial_id(result: Any) -> str:
    return _folder_parts(result)[0]


def _row(result: Any, tracker: Any, epochs: int) -> TrialRow:
    metrics = {**(result.metrics or {}), **read_decision(result.path)}
    cfg = result.config or {}
    runs = tracker.trial_runs if tracker else {}
    tid, number = _folder_parts(result)
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
        params={k: v for k, v in cfg.items() if not k.startswith(PREFIX)},
        metrics={
            k: float(v)
            for k, v in metrics.items()
            if k.startswith(("train/", "val/")) and isinstance(v, int | float)
        },
        epochs=int(metrics.get(EPOCH, 0) or 0),
        run_id=runs.get(tid),
        lineage=json.loads(metrics[PBT_LINEAGE]) if metrics.get(PBT_LINEAGE) else [],
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _finish_parent(tracker: Any, summary: SweepSummary, sweep_dir: Path) -> None:
    info: dict[str, Any] = {
        NUM_TRIALS: len(summary.trials),
        NUM_STOPPED: sum(1 for r in summary.trials if r.stop_reason),
    }
    if summary.best:
        best = summary.best[0]
        info[BEST_TRIAL] = best.trial
        info[BEST_RUN_ID] = best.run_id
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


def _describe_data(config: SweepConfig, data_root: Path) -> list[dict[str, Any]]:
    """The task's train/val sets as MLflow dataset records; none when it cannot say."""
    describe = get_task(config.task.kind).describe_data()
    if describe is None:
        return []
    try:
        return list(describe(config.task, data_root))
    except (OSError, ValueError) as exc:  # the data was checked; a description is a bonus
        log.warning("could not describe the data sets for MLflow: %s", exc)
        return []

"""One trial of the ``command`` task: run the command, report each epoch it logs, stop it.

Runs in the Tune trial process instead of the built-in training loop (no torch here). Every
parsed epoch becomes one report, like a built-in trial's epoch, so schedulers, the
divergence stopper and MLflow work unchanged. The divergence rules also run here, on every
epoch, so a diverging command is stopped (SIGTERM, then SIGKILL after ``grace_s``) before
the report that says why: Tune may kill this process as soon as it sees that report.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.config.models import SweepConfig
from orchestrator.divergence.epoch_check import EpochCheck
from orchestrator.reserved import (
    EPOCH,
    ERROR_TYPE,
    PREFIX,
    STEP,
    STOP_DETAIL,
    STOP_OUTPUT,
    STOP_REASON,
    STOP_STEP,
)
from orchestrator.search_space.space import apply_params, flatten
from orchestrator.tasks.command.config import CommandTaskConfig, JsonLinesLog
from orchestrator.tasks.command.metrics import JsonLinesTail, MetricMap, RegexRecords
from orchestrator.tasks.command.process import CommandProcess
from orchestrator.tasks.command.record import command_argv, write_command_record
from orchestrator.tasks.command.template import render
from orchestrator.training.spec import TrialSpec

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
#: the MLflow tag size this package keeps output tails under
_TAIL_CHARS = 4000


def run_command_trial(
    spec: TrialSpec, report: Report, *, trial_id: str, trial_name: str, trial_dir: str
) -> None:
    """Run the trial's command until it exits, diverges, stalls or is stopped."""
    config = spec.config()
    task = config.task
    assert isinstance(task, CommandTaskConfig)
    hyper = apply_params(config.hyperparameters(), spec.params)
    work_dir = _fresh_work_dir(Path(trial_dir))
    values: dict[str, Any] = flatten(hyper)
    values.update({f"env.{k}": v for k, v in os.environ.items()})
    values.update(
        {
            "trial.id": trial_id,
            "trial.name": trial_name,
            "trial.dir": trial_dir,
            "trial.work_dir": str(work_dir),
        }
    )
    if task.repo is not None:
        values["repo"] = task.repo
    argv = command_argv(task, values)
    cwd = work_dir / render(task.cwd, values) if task.cwd else work_dir
    env = command_env(config, spec.params, values, task)
    write_command_record(Path(trial_dir), task, values, work_dir)

    mapping = MetricMap(
        task.metrics, task.log.report_on if isinstance(task.log, JsonLinesLog) else None
    )
    records: queue.Queue[dict[str, Any]] = queue.Queue()
    tail: JsonLinesTail | None = None
    on_line = None
    if isinstance(task.log, JsonLinesLog):
        tail = JsonLinesTail(str(work_dir / render(task.log.path, values)))
    else:
        regex = RegexRecords(task.log.pattern)

        def on_line(line: str) -> None:
            record = regex.match(line)
            if record is not None:
                records.put(record)

    primary = config.primary
    check = EpochCheck(config.stopping.divergence, (primary.metric, primary.mode))
    history = check.history
    process = CommandProcess(
        argv,
        cwd=str(cwd),
        env=env,
        output_path=str(Path(trial_dir) / "output.log"),
        tail_lines=task.tail_lines,
        on_line=on_line,
    )

    def new_epochs() -> list[dict[str, float]]:
        found = tail.poll() if tail is not None else []
        while True:
            try:
                found.append(records.get_nowait())
            except queue.Empty:
                break
        out = []
        for record in found:
            metrics = mapping.feed(record)
            if metrics is not None:
                out.append(metrics)
        return out

    def stop(
        reason: str, detail: str, metrics: dict[str, Any] | None = None, output: bool = True
    ) -> None:
        """End the command first, then tell Tune: it may kill us once it has the report."""
        process.terminate(task.grace_s)
        result = dict(metrics or {})
        epoch = len(history)
        result.update(
            {
                STOP_REASON: reason,
                STOP_DETAIL: detail,
                STOP_STEP: epoch,
                EPOCH: epoch,
            }
        )
        if output:
            result[STOP_OUTPUT] = output_tail(process)
        report(result)

    started = time.monotonic()
    last_epoch_at = started
    process.start()
    try:
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                process.join_output(timeout_s=5)  # the last lines, before the last look
            for metrics in new_epochs():
                last_epoch_at = time.monotonic()
                epoch = len(history) + 1
                result: dict[str, Any] = {**metrics, EPOCH: epoch, STEP: epoch}
                reason = check.add(result)
                if reason is not None:
                    stop(reason.code, reason.detail, result, output=False)
                    return
                report(result)
            if exit_code is not None:
                break
            now = time.monotonic()
            if now - last_epoch_at > task.stall_timeout_s:
                since = "it started" if not history else f"epoch {len(history)}"
                stop(
                    "timeout",
                    f"no new epoch in the log for {task.stall_timeout_s:g} s "
                    f"(task.stall_timeout_s) since {since}; the command was stopped",
                )
                return
            if task.timeout_s is not None and now - started > task.timeout_s:
                stop(
                    "timeout",
                    f"the command ran longer than task.timeout_s = {task.timeout_s:g} s "
                    f"after {len(history)} epoch(s); it was stopped",
                )
                return
            time.sleep(task.poll_s)
        _finish(exit_code, history, config.train.epochs, process, report)
    finally:
        process.close(task.grace_s)


def _fresh_work_dir(trial_dir: Path) -> Path:
    """``<trial dir>/work``, empty. A trial Tune restarts (after its node or actor died) runs
    in the same trial dir; the earlier attempt's files move to ``work.1``, ``work.2`` ...,
    so its log lines are not read again as this attempt's epochs."""
    work_dir = trial_dir / "work"
    if work_dir.exists() and any(work_dir.iterdir()):
        n = 1
        while (trial_dir / f"work.{n}").exists():
            n += 1
        work_dir.rename(trial_dir / f"work.{n}")
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir


def _finish(
    exit_code: int,
    history: list[dict[str, Any]],
    epochs: int,
    process: CommandProcess,
    report: Report,
) -> None:
    """What an exit by itself means: failed (non-zero, or no epoch at all), short, or done."""
    done = len(history)
    failure: str | None = None
    if exit_code != 0:
        how = f"signal {-exit_code}" if exit_code < 0 else f"code {exit_code}"
        last = next((ln.strip() for ln in reversed(process.last_lines()) if ln.strip()), "")
        failure = f"the command exited with {how} after {done} epoch(s)" + (
            f": {last[:300]}" if last else ""
        )
    elif not history:
        failure = (
            "the command exited with code 0 but no epoch was read: check task.log "
            "(path or pattern) and task.metrics"
        )
    if failure is not None:
        # deterministic: the same command would fail the same way, so it is not retried
        report(
            {
                STOP_REASON: "error",
                STOP_DETAIL: failure,
                ERROR_TYPE: "CommandFailed",
                STOP_OUTPUT: output_tail(process),
                EPOCH: done,
            }
        )
    elif done < epochs:
        report(
            {
                STOP_REASON: "exited_early",
                STOP_DETAIL: f"the command exited (code 0) after {done} of train.epochs = "
                f"{epochs} epochs",
                STOP_STEP: done,
                EPOCH: done,
            }
        )


def output_tail(process: CommandProcess) -> str:
    """The command's last output lines, within an MLflow tag's size."""
    return "\n".join(process.last_lines())[-_TAIL_CHARS:]


def command_env(
    config: SweepConfig, params: dict[str, Any], values: dict[str, Any], task: CommandTaskConfig
) -> dict[str, str]:
    """The command's environment: this process's, the trial's ``ORCH_*`` variables, where
    MLflow is (when known here), and ``task.env``."""
    env = dict(os.environ)
    # Python buffers a piped stdout; a regex on stdout would see epochs late
    env.setdefault("PYTHONUNBUFFERED", "1")
    sampled = {k: v for k, v in params.items() if not k.startswith(PREFIX)}
    env.update(
        {
            "ORCH_TRIAL_ID": str(values["trial.id"]),
            "ORCH_TRIAL_NAME": str(values["trial.name"]),
            "ORCH_TRIAL_DIR": str(values["trial.dir"]),
            "ORCH_WORK_DIR": str(values["trial.work_dir"]),
            "ORCH_SWEEP_NAME": config.name,
            "ORCH_PARAMS": json.dumps(sampled, default=str),
        }
    )
    tracking = config.tracking
    if tracking.enabled:
        uri = _known_tracking_uri(tracking.uri)
        if uri:
            env["MLFLOW_TRACKING_URI"] = uri
        env["ORCH_MLFLOW_EXPERIMENT"] = tracking.experiment or config.name
    env.update({k: render(v, values) for k, v in task.env.items()})
    return env


def _known_tracking_uri(configured: str | None) -> str | None:
    """The sweep's MLflow URI if this process can know it: a configured absolute or remote
    one, else an inherited ``$MLFLOW_TRACKING_URI``. A relative default (``sqlite:///
    mlflow.db``) was resolved against the driver's directory, which a trial cannot see."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return None
    if "://" not in uri:
        return uri if os.path.isabs(uri) else None
    return uri

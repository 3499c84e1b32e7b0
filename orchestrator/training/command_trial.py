"""One trial of the ``command`` task: run the command, report each epoch it logs, stop it.

Runs in the Tune trial process instead of the built-in training loop (no torch here). Every
parsed epoch becomes one report, like a built-in trial's epoch, so schedulers, the
divergence stopper and MLflow work unchanged. The divergence rules also run here, on every
epoch, so a diverging command is stopped (SIGTERM, then SIGKILL after ``grace_s``) before
the report that says why: Tune may kill this process as soon as it sees that report.

A restart (Tune's retry, ``orchestrate resume``) continues the script from its own
checkpoint: every epoch's report hands Tune this trial's small state (:data:`STATE_FILE`:
epochs reported, the divergence rules' history); a restarted trial whose script can resume
(it templates ``{trial.resume_from}``) and left a checkpoint (``task.resume_file``) keeps
its work dir, gets the checkpoint as ``{trial.resume_from}`` and numbers the script's next
epoch after the last one reported.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import queue
import tempfile
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
    RESTORED_FROM_EPOCH,
    STEP,
    STOP_DETAIL,
    STOP_OUTPUT,
    STOP_REASON,
    STOP_STEP,
)
from orchestrator.search_space.space import apply_params, flatten
from orchestrator.tasks.command.config import RESUME_FROM, CommandTaskConfig, JsonLinesLog
from orchestrator.tasks.command.metrics import JsonLinesTail, MetricMap, RegexRecords
from orchestrator.tasks.command.process import CommandProcess
from orchestrator.tasks.command.record import command_argv, write_command_record
from orchestrator.tasks.command.template import placeholders, render
from orchestrator.training.spec import TrialSpec

log = logging.getLogger(__name__)

#: ``report(metrics)``, or ``report(metrics, checkpoint_folder)``
Report = Callable[..., None]
#: the MLflow tag size this package keeps output tails under
_TAIL_CHARS = 4000
#: this trial's own state in each of its Tune checkpoints (the script keeps its own)
STATE_FILE = "command-state.json"


def run_command_trial(
    spec: TrialSpec,
    report: Report,
    *,
    trial_id: str,
    trial_name: str,
    trial_dir: str,
    restored: dict[str, Any] | None = None,
    checkpoints: bool = False,
) -> None:
    """Run the trial's command until it exits, diverges, stalls or is stopped.

    ``restored``: the state of the trial's last Tune checkpoint (:func:`read_state`), on a
    restart. ``checkpoints``: hand every epoch's report a checkpoint of that state
    (``report(metrics, folder)``), so a restart can continue.
    """
    config = spec.config()
    task = config.task
    assert isinstance(task, CommandTaskConfig)
    hyper = apply_params(config.hyperparameters(), spec.params)
    trial_path = Path(trial_dir)
    work_dir = trial_path / "work"
    checkpoint_dir = trial_path / "checkpoints"
    values: dict[str, Any] = flatten(hyper)
    values.update({f"env.{k}": v for k, v in os.environ.items()})
    values.update(
        {
            "trial.id": trial_id,
            "trial.name": trial_name,
            "trial.dir": trial_dir,
            "trial.work_dir": str(work_dir),
            "trial.checkpoint_dir": str(checkpoint_dir),
            RESUME_FROM: "",
        }
    )
    if task.repo is not None:
        values["repo"] = task.repo
    resume_from = resume_file(task, values, work_dir) if restored is not None else None
    logs_before: dict[str, int] = {}
    if resume_from is None:
        # a first attempt, or one that cannot continue (no state, a script that cannot
        # resume or left no checkpoint): it starts over in empty folders
        restored = None
        _fresh_dir(work_dir)
        _fresh_dir(checkpoint_dir)
    else:
        # the script continues in the folders it wrote; its log's earlier epochs were
        # reported by the attempts before
        values[RESUME_FROM] = str(resume_from)
        if isinstance(task.log, JsonLinesLog):
            logs_before = _sizes(str(work_dir / render(task.log.path, values)))
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
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
        tail = JsonLinesTail(str(work_dir / render(task.log.path, values)), logs_before)
    else:
        regex = RegexRecords(task.log.pattern)

        def on_line(line: str) -> None:
            record = regex.match(line)
            if record is not None:
                records.put(record)

    primary = config.primary
    check = EpochCheck(config.stopping.divergence, (primary.metric, primary.mode))
    history = check.history
    if restored is not None:
        history[:] = [dict(r) for r in restored["history"]]
        report = _restored_from(report, int(restored["epoch"]))
        log.info("continuing after epoch %d from %s", restored["epoch"], resume_from)
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
                if checkpoints:
                    _report_with_state(report, result, history)
                else:
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


def _fresh_dir(folder: Path) -> None:
    """``folder`` (``work``, ``checkpoints``), empty. A trial Tune restarts (after its node
    or actor died) runs in the same trial dir; when it starts over, the earlier attempt's
    files move to ``work.1``, ``work.2`` ..., so its log lines are not read again as this
    attempt's epochs and its checkpoints are not taken for this attempt's."""
    if folder.exists() and any(folder.iterdir()):
        n = 1
        while folder.with_name(f"{folder.name}.{n}").exists():
            n += 1
        folder.rename(folder.with_name(f"{folder.name}.{n}"))
    folder.mkdir(parents=True, exist_ok=True)


def resume_file(task: CommandTaskConfig, values: dict[str, Any], work_dir: Path) -> Path | None:
    """The script's checkpoint a restarted trial resumes from: the newest match of
    ``task.resume_file`` (relative to the work dir), or None when the command cannot resume
    (it never uses ``{trial.resume_from}``) or no attempt left one."""
    uses = any(p.name == RESUME_FROM for t in task.templates().values() for p in placeholders(t))
    if not uses:
        return None
    pattern = work_dir / render(task.resume_file, values)
    found = [Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file()]
    if not found:
        return None
    # newest first; equal times (a coarse clock) by name, checkpoint0009 before 0010
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def read_state(checkpoint: Any) -> dict[str, Any] | None:
    """The trial's state in a Tune checkpoint (``tune.get_checkpoint()``), or None."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            return None
        state: dict[str, Any] = json.loads(path.read_text())
        return state


def _report_with_state(report: Report, result: dict[str, Any], history: list[Any]) -> None:
    """Report ``result`` with a checkpoint of this trial's state after it: a few KB, every
    epoch, whatever the script's own cadence (a restart continues after the last epoch
    reported, so the two must agree on it)."""
    with tempfile.TemporaryDirectory(prefix="orch-command-state-") as folder:
        state = {"epoch": len(history), "history": history}
        (Path(folder) / STATE_FILE).write_text(json.dumps(state, default=str))
        # the report persists the folder into the trial's storage before it returns
        report(result, folder)


def _restored_from(report: Report, epoch: int) -> Report:
    """``report`` with ``orch.restored_from_epoch`` in every report of a restored trial."""

    def tagged(metrics: dict[str, Any], *args: Any) -> None:
        report({**metrics, RESTORED_FROM_EPOCH: epoch}, *args)

    return tagged


def _sizes(pattern: str) -> dict[str, int]:
    """Every file matching ``pattern`` with its size now: what earlier attempts logged."""
    return {str(Path(p)): Path(p).stat().st_size for p in glob.glob(pattern) if Path(p).is_file()}


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

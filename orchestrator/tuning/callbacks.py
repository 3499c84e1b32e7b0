"""Ray Tune callbacks of a sweep: MLflow tracking and the live terminal table."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback
from ray.tune.experiment import Trial

from orchestrator.reserved import (
    ATTEMPT,
    CHECKPOINT_EPOCH,
    EPOCH,
    ERROR_TYPE,
    PREFIX,
    REPEAT_TRIAL,
    SEED,
    STATUS,
    STEP,
    STOP_DETAIL,
    STOP_REASON,
    STOP_STEP,
    STOPPED_BY,
)
from orchestrator.search_space.space import apply_params, flatten
from orchestrator.tasks.base import TaskConfig
from orchestrator.tracking.mlflow_tracker import MODEL_NAME, SweepTracker
from orchestrator.tuning.checkpoint_models import kept_models
from orchestrator.tuning.summary import end_reason
from orchestrator.tuning.trial_end import folder_of, mark_finished, read_decision

log = logging.getLogger(__name__)


def trial_label(trial: Trial) -> str:
    """``trial-<n>``, n counting trials in the order the searcher created them.

    Tune's experiment tag starts with that counter (``3_loss_cls=ce,...``).
    """
    repeated = trial.config.get(REPEAT_TRIAL)
    if repeated:  # the seed-repeat phase: named after the configuration it repeats
        return f"{repeated}-seed{trial.config.get(SEED)}"
    number = (trial.experiment_tag or "").split("_", 1)[0]
    return f"trial-{number}" if number.isdigit() else f"trial-{trial.trial_id}"


def stop_reason(trial: Trial, epochs: int) -> tuple[str, str]:
    """Why a finished trial ended (see :func:`end_reason`), with an error's last line."""
    errored = trial.status == Trial.ERROR
    last = {**(trial.last_result or {}), **read_decision(folder_of(trial))}
    reason, detail = end_reason(trial.config, last, errored, epochs)
    return reason, _error_tail(trial) if errored else detail


def _error_tail(trial: Trial) -> str:
    path = trial.error_file
    if not path:
        return "trial failed"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f.read().strip().splitlines() if ln.strip()]
        return lines[-1][:500] if lines else "trial failed"
    except OSError:
        return "trial failed"


class FinishedMarks(Callback):
    """Writes ``finished.json`` for trials that ended without writing it themselves (a
    scheduler cut them inside a report), so a resumed sweep never trains them again."""

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        try:
            mark_finished(folder_of(trial), dict(trial.last_result or {}))
        except OSError as exc:
            log.warning("could not mark %s finished: %s", trial_label(trial), exc)


class TrackingCallback(Callback):
    """Mirrors trials into MLflow child runs. MLflow errors are logged, never fatal."""

    def __init__(
        self,
        tracker: SweepTracker,
        epochs: int,
        hyperparameters: dict[str, Any],
        datasets: list[dict[str, Any]] | None = None,
        task: TaskConfig | None = None,
        checkpoint_models: bool = False,
    ) -> None:
        self.tracker = tracker
        self.epochs = epochs
        self.hyperparameters = hyperparameters
        self.datasets = datasets or []
        #: decides which hyperparameters a trial's run lists (``TaskConfig.trial_params``)
        self.task = task
        #: log each kept checkpoint's weights as a logged model (train.checkpoint.log_models)
        self.checkpoint_models = checkpoint_models

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # every child run carries the hyperparameters its trial uses, fixed and sampled,
        # so runs compare side by side in MLflow without the sweep file
        resolved = flatten(apply_params(self.hyperparameters, trial.config))
        if self.task is not None:
            resolved = self.task.trial_params(resolved)
        orch = {k: v for k, v in trial.config.items() if k.startswith(PREFIX)}
        params = {**resolved, **orch}
        self._safe(self.tracker.start_trial, trial.trial_id, trial_label(trial), params)
        self._safe(self.tracker.log_datasets, trial.trial_id, self.datasets)

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        # Tune counts the trial's restarts; the child run's tag says which attempt reported
        result[ATTEMPT] = trial.num_failures + 1
        step = int(result.get(STEP, result.get("training_iteration", 0)) or 0)
        self._safe(self.tracker.log_result, trial.trial_id, result, step)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._end(trial, "FINISHED")

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._end(trial, "FAILED")

    def _end(self, trial: Trial, status: str) -> None:
        command = os.path.join(folder_of(trial), "command.json")
        if os.path.isfile(command):  # a command trial's argv and cwd, failed ones above all
            self._safe(self.tracker.log_trial_artifacts, trial.trial_id, command, "command")
        reason, detail = stop_reason(trial, self.epochs)
        if reason == "error":
            # the trainable ended a deterministic failure itself: Tune saw a normal end
            status = "FAILED"
        model_dir = os.path.join(folder_of(trial), MODEL_NAME)
        if status == "FINISHED" and self.checkpoint_models:
            self._safe(self._log_checkpoint_models, trial)
        if status == "FINISHED" and os.path.isfile(os.path.join(model_dir, "model.pt")):
            self._safe(self.tracker.log_trial_model, trial.trial_id, model_dir)
        tags = {STATUS: "error" if status == "FAILED" else (reason or "completed")}
        if reason:
            tags.update({STOP_REASON: reason, STOP_DETAIL: detail})
        last = {**(trial.last_result or {}), **read_decision(folder_of(trial))}
        for key in (STOP_STEP, ERROR_TYPE, STOPPED_BY):
            if last.get(key) is not None:
                tags[key] = str(last[key])
        self._safe(self.tracker.end_trial, trial.trial_id, status, tags)

    def _log_checkpoint_models(self, trial: Trial) -> None:
        local = Path(folder_of(trial)) / "checkpoint-models"
        for kept in kept_models(trial, local):
            tags = {CHECKPOINT_EPOCH: str(kept.epoch)}
            self.tracker.log_trial_model(
                trial.trial_id, kept.folder, kept.name, step=kept.step, tags=tags
            )

    def _safe(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # an MLflow hiccup must not kill the sweep
            log.warning("tracking journal write failed (%s): %s", fn.__name__, exc)


class ProgressTable(Callback):
    """A compact table of trials, reprinted when something changes (at most every few s).

    On a terminal the table is redrawn in place; in a log file each version is appended.
    """

    def __init__(
        self,
        metric: str,
        params: list[str],
        epochs: int,
        out: TextIO | None = None,
        min_interval_s: float = 5.0,
    ) -> None:
        self.metric = metric
        self.params = params
        self.epochs = epochs
        self.out = out or sys.stdout
        self.min_interval_s = min_interval_s
        self._last_print = 0.0
        self._dirty = False
        self._started = time.monotonic()
        self._drawn = 0  # lines of the last table, when redrawing in place on a terminal

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled by a resumed sweep: its clock and screen start afresh
        self.__dict__.update(state)
        self._started = time.monotonic()
        self._last_print = 0.0
        self._drawn = 0

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._dirty = True

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: Any, **info: Any
    ) -> None:
        self._dirty = True

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._dirty = True

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._dirty = True

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        now = time.monotonic()
        if self._dirty and now - self._last_print >= self.min_interval_s:
            self.print(trials)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.print(trials)

    def print(self, trials: list[Trial]) -> None:
        self._last_print = time.monotonic()
        self._dirty = False
        text = render_table(
            trials, self.metric, self.params, self.epochs, time.monotonic() - self._started
        )
        if self._drawn and _is_tty(self.out):
            # redraw in place: cursor up over the previous table, clear to the end of screen
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write(text)
        self.out.flush()
        self._drawn = text.count("\n")


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _status(trial: Trial, epochs: int) -> str:
    if trial.status in (Trial.TERMINATED, Trial.ERROR):
        reason, _ = stop_reason(trial, epochs)
        if trial.status == Trial.ERROR:
            return "ERROR"
        return reason.upper() if reason else "DONE"
    return str(trial.status)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value or math.isinf(value):
            return str(value)
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}"
    return "-" if value is None else str(value)


def render_table(
    trials: list[Trial], metric: str, params: list[str], epochs: int, elapsed_s: float
) -> str:
    """The table as text: one row per trial with its key params, epoch, objective, status."""
    short = [p.split(".", 1)[-1] for p in params]
    header = ["trial", *short, "epoch", metric, "status"]
    rows = []
    for t in trials:
        last = t.last_result or {}
        rows.append(
            [
                trial_label(t),
                *[_fmt(t.config.get(p)) for p in params],
                f"{last.get(EPOCH, 0) or 0}/{epochs}",
                _fmt(last.get(metric)),
                _status(t, epochs),
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"== {len(trials)} trials, {elapsed_s:.0f}s elapsed =="]
    for r in [header, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines) + "\n"

"""MLflow bookkeeping of a sweep: one parent run, one nested child run per trial.

Driven from Ray Tune callbacks in the sweep's driver process; trial processes never talk to
MLflow. Writes go through a durable journal in the sweep folder and a background writer
(``MlflowClient`` with explicit run ids, no global "active run"), so the sweep neither waits
for the server nor loses anything while it is away.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar

from orchestrator.config.metrics import IN_FORCE_PREFIX
from orchestrator.redact import strip_userinfo
from orchestrator.reserved import (
    ACCUM,
    ATTEMPT,
    KIND,
    LR_SCALED,
    MICRO_BATCH,
    OOM_BACKOFFS,
    PBT_CLONED_FROM,
    PBT_EXPLOIT_EPOCH,
    PBT_EXPLOITS,
    PBT_LINEAGE,
    PBT_REPLACED,
    PREFIX,
    RESTORED_FROM_EPOCH,
    STATUS,
    STOP_DETAIL,
    STOP_PREFIX,
    SWEEP_RUN_ID,
    SYSTEM_SAMPLES,
    TRIAL,
    TRIAL_ID,
)
from orchestrator.tracking.journal import SWEEP_KEY, Journal, trial_key

log = logging.getLogger(__name__)

#: Metric name prefixes logged as MLflow metrics; other result keys are Ray bookkeeping.
METRIC_PREFIXES = ("train/", "val/", IN_FORCE_PREFIX)
#: MLflow's prefix of system metrics (its UI's System metrics tab)
SYSTEM_PREFIX = "system/"
#: name of a trial's logged model (and of its weights folder in the trial directory)
MODEL_NAME = "model"


#: what a trial reports about its own batch plan, which can change while it runs (``micro:
#: auto``, OOM back-off), and about its restarts: kept as tags, so the run shows the final
#: values
REPORTED_TAGS = frozenset(
    {MICRO_BATCH, ACCUM, OOM_BACKOFFS, LR_SCALED, RESTORED_FROM_EPOCH, ATTEMPT}
    # a population scheduler's clones (docs/pbt.md): the values in force are hp/ metrics
    | {PBT_CLONED_FROM, PBT_EXPLOIT_EPOCH, PBT_EXPLOITS, PBT_LINEAGE, PBT_REPLACED}
)


class SweepTracker:
    """Parent/child MLflow runs of one sweep, written through the sweep's journal.

    Every call appends to the journal (:mod:`.journal`) and returns at once; a background
    :class:`~orchestrator.tracking.writer.JournalWriter` applies the ops to MLflow. Opening
    the tracker of a sweep folder that already has a journal (``orchestrate resume``)
    continues its runs: a trial or sweep run created before is set back to RUNNING, not
    created again, and metric steps it already logged are not logged twice.
    """

    _open: ClassVar[dict[str, SweepTracker]] = {}

    def __init__(
        self,
        uri: str,
        experiment: str,
        sweep_name: str,
        journal_dir: str | Path,
        *,
        fsync: bool = True,
    ) -> None:
        from orchestrator.tracking.writer import LINGER_S, JournalWriter

        self.uri = uri
        self.experiment = experiment
        self.sweep_name = sweep_name
        self.journal_dir = Path(journal_dir)
        self.journal = Journal(self.journal_dir, fsync=fsync)
        meta = self.journal_dir / "meta.json"
        if not meta.is_file():  # what `orchestrate sync` uploads to, later
            meta.write_text(
                json.dumps(
                    {"uri": strip_userinfo(uri), "experiment": experiment, "sweep": sweep_name}
                )
            )
        self.resumed = SWEEP_KEY in self.journal.created
        self._running: set[str] = set()  # trial runs started and not ended by this process
        self._system_steps: dict[str, int] = {}  # run key -> system-metric samples logged
        self.writer = JournalWriter(self.journal, uri, linger_s=LINGER_S).start()
        SweepTracker._open[str(self.journal_dir)] = self

    @classmethod
    def open(
        cls, uri: str, experiment: str, sweep_name: str, journal_dir: str | Path
    ) -> SweepTracker:
        """This process's tracker of ``journal_dir``, opened once (see ``__reduce__``)."""
        found = cls._open.get(str(Path(journal_dir)))
        return found if found is not None else cls(uri, experiment, sweep_name, journal_dir)

    def __reduce__(self) -> tuple[Any, ...]:
        # Tune pickles its callbacks into the experiment folder; a restored sweep gets back
        # the tracker of the same journal instead of a copy of a dead writer thread
        # (without the URI's credentials: the pickle is saved in the sweep folder)
        return (
            SweepTracker.open,
            (strip_userinfo(self.uri), self.experiment, self.sweep_name, self.journal_dir),
        )

    @property
    def parent_id(self) -> str | None:
        return self.writer.state.runs.get(SWEEP_KEY)

    @property
    def trial_runs(self) -> dict[str, str]:
        """Tune trial id -> MLflow run id, for the runs MLflow has created so far."""
        prefix = trial_key("")
        return {
            k[len(prefix) :]: v for k, v in self.writer.state.runs.items() if k.startswith(prefix)
        }

    def start_sweep(self, params: dict[str, Any], tags: dict[str, str]) -> None:
        if self.resumed:
            self._reopen(SWEEP_KEY)
            return
        self.journal.append({"op": "experiment", "name": self.experiment})
        self.journal.append(
            {
                "op": "create_run",
                "key": SWEEP_KEY,
                "name": self.sweep_name,
                "time": _now(),
                "tags": {KIND: "sweep", **tags},
            }
        )
        self._log_params(SWEEP_KEY, params)

    def start_trial(self, trial_id: str, name: str, params: dict[str, Any]) -> None:
        key = trial_key(trial_id)
        self._running.add(key)
        if key in self.journal.created:
            self._reopen(key)  # a resumed trial continues its run
            return
        tags = {KIND: "trial", TRIAL_ID: trial_id}
        tags.update({k: str(v) for k, v in params.items() if k.startswith(PREFIX)})
        self.journal.append(
            {
                "op": "create_run",
                "key": key,
                "parent": SWEEP_KEY,
                "name": name,
                "time": _now(),
                "tags": tags,
            }
        )
        self._log_params(key, {k: v for k, v in params.items() if not k.startswith(PREFIX)})

    def log_result(self, trial_id: str, result: dict[str, Any], step: int) -> None:
        key = trial_key(trial_id)
        if key not in self.journal.created:
            return
        now = _now()
        metrics = [
            [k, float(v), now, step]
            for k, v in result.items()
            if k.startswith(METRIC_PREFIXES)
            and isinstance(v, int | float)
            and not isinstance(v, bool)
        ]
        if step <= self.journal.last_step.get(key, -1):
            # a restarted trial re-reporting steps its run already has: after a resume, or
            # a Tune retry from a checkpoint older than its last report (checkpoint.every
            # > 1); the run keeps the first values, MLflow never holds a step twice
            metrics = []
        self._log_system(key, result.get(SYSTEM_SAMPLES))
        tags = [
            [k, str(v)]
            for k, v in result.items()
            if (k.startswith(STOP_PREFIX) or k in REPORTED_TAGS) and v is not None
        ]
        if metrics or tags:
            self.journal.append({"op": "log_batch", "key": key, "metrics": metrics, "tags": tags})

    def _log_system(self, key: str, samples: Any) -> None:
        """System metrics sampled in the trial, as MLflow's ``system/...`` metrics: one
        step per sample, counted per run, as MLflow's own monitor does. Their own op kind
        (applied like ``log_batch``), so their steps never count as training steps."""
        if not isinstance(samples, list) or not samples:
            return
        first = self._system_steps.get(key, 0)
        rows = [
            [SYSTEM_PREFIX + name, float(value), int(time_ms), first + offset]
            for offset, (time_ms, values) in enumerate(samples)
            for name, value in values.items()
        ]
        self._system_steps[key] = first + len(samples)
        self.journal.append({"op": "log_system", "key": key, "metrics": rows})

    def end_trial(self, trial_id: str, status: str, tags: dict[str, str]) -> None:
        key = trial_key(trial_id)
        self._running.discard(key)
        if key not in self.journal.created:
            return
        self._end(key, status, tags)

    def end_running_trials(self, status: str, tags: dict[str, str]) -> int:
        """End every trial run still open (a Ctrl-C stops trials without ending them);
        returns how many. ``orchestrate resume`` sets them running again."""
        keys = sorted(k for k in self._running if k in self.journal.created)
        for key in keys:
            self._end(key, status, tags)
        self._running.clear()
        return len(keys)

    def end_lost_trials(self, known: set[str]) -> list[str]:
        """End and soft-delete the child runs of trials no experiment knows any more;
        returns their trial ids.

        A trial that started after Tune's last saved experiment state and before the
        driver was lost (a killed head pod) is forgotten by the resumed experiment, which
        runs a new trial in its place; its run would stand beside the new one as a
        duplicate. It ends KILLED, tagged ``orch.status=lost`` with the reason, and is
        deleted the way MLflow deletes (restorable from the UI's deleted runs), so the runs
        table lists the trials Tune and the summary list. ``known``: every trial id of the
        sweep's experiments.
        """
        prefix = trial_key("")
        kept = {trial_key(t) for t in known}
        lost = sorted(k for k in self.journal.created if k.startswith(prefix) and k not in kept)
        for key in lost:
            self._running.discard(key)
            self._end(key, "KILLED", {STATUS: "lost", STOP_DETAIL: LOST_DETAIL})
            self.journal.append({"op": "delete_run", "key": key})
        return [k.removeprefix(prefix) for k in lost]

    def log_datasets(self, trial_id: str, datasets: list[dict[str, Any]]) -> None:
        """Record the data sets a trial trains and validates on as MLflow dataset inputs
        (dicts of :func:`orchestrator.tasks.datasets.describe`)."""
        key = trial_key(trial_id)
        if datasets and key in self.journal.created:
            self.journal.append({"op": "inputs", "key": key, "datasets": datasets})

    def end_sweep(self, summary: dict[str, Any], status: str = "FINISHED") -> None:
        now = _now()
        metrics = [
            [k, float(v), now, 0]
            for k, v in summary.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        tags = {
            k: str(v)[:5000]
            for k, v in summary.items()
            if v is not None and not (isinstance(v, int | float) and not isinstance(v, bool))
        }
        if metrics:
            self.journal.append({"op": "log_batch", "key": SWEEP_KEY, "metrics": metrics})
        self._end(SWEEP_KEY, status, tags)

    def log_artifact(self, path: str) -> None:
        self.journal.append({"op": "artifacts", "key": SWEEP_KEY, "path": str(path)})

    def log_trial_artifacts(self, trial_id: str, path: str, artifact_path: str) -> bool:
        """Upload a trial's file or folder (a command's ``command.json``) into its child
        run's artifacts, under ``artifact_path``; weights go through :meth:`log_trial_model`."""
        key = trial_key(trial_id)
        if key not in self.journal.created:
            return False
        self.journal.append(
            {"op": "artifacts", "key": key, "path": path, "artifact_path": artifact_path}
        )
        return True

    def log_trial_model(
        self,
        trial_id: str,
        local_dir: str,
        name: str = MODEL_NAME,
        step: int | None = None,
        tags: dict[str, str] | None = None,
    ) -> bool:
        """Log a trial's weights folder as an MLflow 3 logged model of its run, carrying
        the run's ``train/``/``val/`` values (``search_logged_models`` ranks by them): its
        last ones, or with ``step`` (a kept checkpoint's), those logged at that step."""
        key = trial_key(trial_id)
        if key not in self.journal.created:
            return False
        op: dict[str, Any] = {
            "op": "logged_model",
            "key": key,
            "name": name,
            "path": local_dir,
            "tags": {TRIAL_ID: trial_id, **(tags or {})},
        }
        if step is not None:
            op["step"] = step
        self.journal.append(op)
        return True

    def has_model(self, trial_id: str) -> bool:
        """Whether the trial's weights were uploaded (a ``command`` trial keeps its own)."""
        return trial_key(trial_id) in self.journal.models

    def register_best(self, trial_id: str, trial: str, alias: str = "best") -> None:
        """Register the trial's logged model under the sweep's name, alias ``alias``.

        Applied by the writer like every other op; the version it gets is tagged on the
        parent run (``orch.registered_version``) and kept in :attr:`versions`.
        """
        self.journal.append(
            {
                "op": "register",
                "key": trial_key(trial_id),
                "name": self.sweep_name,
                "model": MODEL_NAME,
                "source": "runs:/{run_id}/" + MODEL_NAME,
                "alias": alias,
                "description": "Best trial of each orchestrator sweep of this name.",
                "tags": {SWEEP_RUN_ID: "run:" + SWEEP_KEY, TRIAL: trial},
            }
        )

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.writer.state.versions)

    def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until MLflow has everything; False if it has not."""
        return self.writer.flush(timeout)

    @property
    def pending(self) -> int:
        return self.writer.pending

    def close(self) -> None:
        self.writer.stop()
        self.journal.close()
        SweepTracker._open.pop(str(self.journal_dir), None)

    def _reopen(self, key: str) -> None:
        self.journal.append({"op": "set_status", "key": key, "status": "RUNNING"})

    def _end(self, key: str, status: str, tags: dict[str, str]) -> None:
        if tags:
            self.journal.append(
                {"op": "log_batch", "key": key, "tags": [[k, v] for k, v in tags.items()]}
            )
        self.journal.append({"op": "set_status", "key": key, "status": status, "time": _now()})

    def _log_params(self, key: str, params: dict[str, Any]) -> None:
        items = [[k, str(v)[:6000]] for k, v in sorted(params.items())]
        if items:
            self.journal.append({"op": "log_batch", "key": key, "params": items})


#: why a lost trial's run was deleted (tag ``orch.stop_detail``)
LOST_DETAIL = (
    "started after the sweep's last saved state and lost with its driver; the resumed sweep "
    "ran a new trial in its place"
)


def _now() -> int:
    return int(time.time() * 1000)

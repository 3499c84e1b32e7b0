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

from orchestrator.tracking.journal import SWEEP_KEY, Journal, trial_key

log = logging.getLogger(__name__)

#: Metric name prefixes logged as MLflow metrics; other result keys are Ray bookkeeping.
METRIC_PREFIXES = ("train/", "val/")


#: what a trial reports about its own batch plan, which can change while it runs (``micro:
#: auto``, OOM back-off): kept as tags, so the run shows the final values
REPORTED_TAGS = frozenset(
    {"orch.micro_batch", "orch.accum", "orch.oom_backoffs", "orch.lr_scaled"}
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
        from orchestrator.tracking.writer import JournalWriter

        self.uri = uri
        self.experiment = experiment
        self.sweep_name = sweep_name
        self.journal_dir = Path(journal_dir)
        self.journal = Journal(self.journal_dir, fsync=fsync)
        meta = self.journal_dir / "meta.json"
        if not meta.is_file():  # what `orchestrate sync` uploads to, later
            meta.write_text(
                json.dumps({"uri": uri, "experiment": experiment, "sweep": sweep_name})
            )
        self.resumed = SWEEP_KEY in self.journal.created
        self._reopened: set[str] = set()
        self.writer = JournalWriter(self.journal, uri).start()
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
        return (SweepTracker.open, (self.uri, self.experiment, self.sweep_name, self.journal_dir))

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
                "tags": {"orch.kind": "sweep", **tags},
            }
        )
        self._log_params(SWEEP_KEY, params)

    def start_trial(self, trial_id: str, name: str, params: dict[str, Any]) -> None:
        key = trial_key(trial_id)
        if key in self.journal.created:
            self._reopen(key)  # a resumed trial continues its run
            return
        tags = {"orch.kind": "trial", "orch.trial_id": trial_id}
        tags.update({k: str(v) for k, v in params.items() if k.startswith("orch.")})
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
        self._log_params(key, {k: v for k, v in params.items() if not k.startswith("orch.")})

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
        if key in self._reopened and step <= self.journal.last_step.get(key, -1):
            metrics = []  # a restarted trial re-reporting steps its run already has
        tags = [
            [k, str(v)]
            for k, v in result.items()
            if (k.startswith("orch.stop") or k in REPORTED_TAGS) and v is not None
        ]
        if metrics or tags:
            self.journal.append({"op": "log_batch", "key": key, "metrics": metrics, "tags": tags})

    def end_trial(self, trial_id: str, status: str, tags: dict[str, str]) -> None:
        key = trial_key(trial_id)
        if key not in self.journal.created:
            return
        self._end(key, status, tags)

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

    def log_trial_artifacts(self, trial_id: str, local_dir: str, artifact_path: str) -> bool:
        """Upload a trial's folder (its final weights) or file (a command's ``command.json``)
        into its child run, under ``artifact_path``."""
        key = trial_key(trial_id)
        if key not in self.journal.created:
            return False
        self.journal.append(
            {"op": "artifacts", "key": key, "path": local_dir, "artifact_path": artifact_path}
        )
        return True

    def has_model(self, trial_id: str) -> bool:
        """Whether the trial's weights were uploaded (a ``command`` trial keeps its own)."""
        return trial_key(trial_id) in self.journal.models

    def register_best(self, trial_id: str, trial: str, alias: str = "best") -> None:
        """Register the trial's ``model`` artifact under the sweep's name, alias ``alias``.

        Applied by the writer like every other op; the version it gets is tagged on the
        parent run (``orch.registered_version``) and kept in :attr:`versions`.
        """
        self.journal.append(
            {
                "op": "register",
                "key": trial_key(trial_id),
                "name": self.sweep_name,
                "source": "runs:/{run_id}/model",
                "alias": alias,
                "description": "Best trial of each orchestrator sweep of this name.",
                "tags": {"orch.sweep_run_id": "run:" + SWEEP_KEY, "orch.trial": trial},
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
        self._reopened.add(key)
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


def _now() -> int:
    return int(time.time() * 1000)

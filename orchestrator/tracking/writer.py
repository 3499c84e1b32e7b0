"""Applies a sweep's journal to MLflow, in order, in a background thread.

An op that fails because the server is unreachable (connection refused, timeout, 5xx, a
locked SQLite file) is retried with back-off, forever, until the writer is stopped: the op
stays in the journal and the next writer (``orchestrate resume``/``sync``) starts from it.
An op MLflow *rejects* (invalid parameter, missing run) is retried a few times, then moved to
``failed.jsonl`` so one bad value cannot hold every later metric back.

One writer per journal at a time: a lock file (``flock``) keeps ``orchestrate sync`` off a
sweep whose driver is still writing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.redact import mask_userinfo
from orchestrator.reserved import JOURNAL_KEY, REGISTERED_VERSION
from orchestrator.tracking.journal import (
    FAILED_FILE,
    LOCK_FILE,
    STATE_FILE,
    SWEEP_KEY,
    Journal,
    JournalState,
)

log = logging.getLogger(__name__)

#: MLflow error codes that mean "this request is wrong", not "the server is away"
REJECTED = frozenset(
    {
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_ALREADY_EXISTS",
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_STATE",
        "BAD_REQUEST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    }
)
REJECT_ATTEMPTS = 3
#: tag that names a run's journal key, so a replayed create finds the run it made before
RUN_KEY_TAG = JOURNAL_KEY
#: experiment tag MLflow's UI reads to choose its layout; "custom_model_development" opens
#: the runs table (model training) instead of the GenAI traces view
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: metrics a logged model carries (its run's last training and validation values)
MODEL_METRIC_PREFIXES = ("train/", "val/")
#: ops that a writer behind the journal merges into one MLflow call when they are
#: consecutive and for the same run: each is one report's values, and each call costs a
#: request (a server) or a store transaction (SQLite) whatever its size
MERGEABLE = frozenset({"log_batch", "log_system"})
#: one merged call's limits, under MLflow's per-batch caps (1000 metrics, 100 params,
#: 100 tags, 1000 items in all)
MERGE_METRICS, MERGE_PARAMS, MERGE_TAGS = 800, 100, 100
#: how long a sweep's writer lets a run's newest reports wait for more to merge with: on a
#: SQLite store one report per call costs ~1 ms of CPU per metric value, 20 per call
#: ~0.17 ms; a flush, a stop or any other op ends the wait
LINGER_S = 1.0


class JournalBusyError(RuntimeError):
    """Another process is applying this journal."""


class JournalDamagedError(OrchestratorError):
    """``state.json`` names an applied op the journal no longer holds, and nothing tells
    where it was: which ops MLflow lacks cannot be told (new ops could be skipped)."""


class JournalWriter:
    """Apply ``journal``'s ops from ``state.applied`` on; ``start()`` runs it in a thread."""

    def __init__(
        self, journal: Journal, uri: str, max_backoff_s: float = 5.0, linger_s: float = 0.0
    ) -> None:
        """``linger_s``: how long the background thread lets a run's newest reports wait
        for more of the same run to merge with (``drain`` never waits)."""
        self.journal = journal
        self.uri = uri
        self.max_backoff_s = max_backoff_s
        self.linger_s = linger_s
        self.state = JournalState.load(journal.root / STATE_FILE)
        self.uid = journal.root.parent.name  # the sweep folder's name: unique per sweep
        self.last_error: str | None = None
        self.outage_since: float | None = None
        self._stop = threading.Event()
        self._hurry = threading.Event()  # a flush or stop is waiting: no lingering
        self._thread: threading.Thread | None = None
        self._progress = threading.Condition()
        self._client: Any = None
        self._lock_file = (journal.root / LOCK_FILE).open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise JournalBusyError(
                f"{journal.root}: another orchestrate process is writing this sweep's "
                "tracking journal (is the sweep still running?)"
            ) from None
        applied = journal.locate_applied(self.state)
        if applied is None:
            self._lock_file.close()
            where = ", ".join(d.describe() for d in journal.damaged) or "none found"
            raise JournalDamagedError(
                f"{journal.path}: the last op {STATE_FILE} records as applied to MLflow "
                f"(op {self.state.applied}) is not in the journal ({len(journal)} readable "
                f"ops; damaged lines: {where}), so what MLflow lacks cannot be told"
            )
        #: what the count in state.json was, when the journal's lines moved beneath it
        self.recounted_from = self.state.applied if applied != self.state.applied else None
        self.state.applied = applied
        # a writer that continues a journal may replay ops applied before a kill (state.json
        # is written after each op): its creates look for their run before making a new one
        self._recovering = self.state.applied > 0

    @property
    def pending(self) -> int:
        return len(self.journal) - self.state.applied

    def start(self) -> JournalWriter:
        self._thread = threading.Thread(target=self._run, name="mlflow-journal", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float) -> bool:
        """Wait until every op appended so far is applied; False if ``timeout`` ran out."""
        target = len(self.journal)
        deadline = time.monotonic() + timeout
        self._hurry.set()
        with self._progress:
            while self.state.applied < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.5))
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._hurry.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._lock_file.close()

    def drain(self, timeout: float) -> bool:
        """Apply ops in the calling thread until none are left (``orchestrate sync``)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self._step(deadline)
        return self.pending == 0

    # -- internals -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.pending:
                self._hurry.clear()  # caught up: what a flush waited for is applied
                self.journal.wait_for(self.state.applied, timeout=0.5)
                continue
            linger = self._linger_left()
            if linger > 0:
                # woken by the next op (which may end the merge), else within 0.1 s to see
                # a flush or stop
                self.journal.wait_for(len(self.journal), timeout=min(linger, 0.1))
                continue
            self._step(None)

    def _linger_left(self) -> float:
        """Seconds the next op may still wait for more of its run's reports to merge with:
        0 unless it is mergeable, nothing ends its merge yet (no other op follows) and it
        is younger than ``linger_s``."""
        if self.linger_s <= 0 or self._hurry.is_set():
            return 0.0
        first = self.state.applied
        _, count = self._merged(first)
        if first + count < len(self.journal) or self.journal.op(first)["op"] not in MERGEABLE:
            return 0.0
        return max(0.0, self.linger_s - self.journal.age(first))

    def _step(self, deadline: float | None) -> None:
        first = self.state.applied
        op, count = self._merged(first)
        backoff = 0.2
        rejected = 0
        while not self._stop.is_set():
            try:
                self._apply(op)
                break
            except Exception as exc:
                code = str(getattr(exc, "error_code", ""))
                if code in REJECTED and count > 1:
                    # one of the merged ops is at fault: apply them one at a time, so only
                    # that one is set aside (a re-sent metric is no duplicate in MLflow)
                    op, count = self.journal.op(first), 1
                    continue
                if code in REJECTED:
                    rejected += 1
                    if rejected >= REJECT_ATTEMPTS:
                        self._give_up(op, exc)
                        break
                elif self.outage_since is None:
                    self.outage_since = time.monotonic()
                    log.warning(
                        "MLflow unreachable (%s); buffering in %s", _short(exc), self.journal.path
                    )
                self.last_error = _short(exc)
            if deadline is not None and time.monotonic() + backoff > deadline:
                return
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
        else:
            return
        if self.outage_since is not None:
            log.warning(
                "MLflow reachable again after %.0f s; flushing buffered writes",
                time.monotonic() - self.outage_since,
            )
            self.outage_since = None
        with self._progress:
            start, digest = self.journal.mark(first + count - 1)
            self.state.applied = first + count
            self.state.applied_start, self.state.applied_digest = start, digest
            _atomic_write(self.journal.root / STATE_FILE, self.state.to_json())
            self._progress.notify_all()

    def _merged(self, first: int) -> tuple[dict[str, Any], int]:
        """Op ``first``, merged with the ``MERGEABLE`` ops of the same run right after it
        that are already in the journal, while they fit one MLflow batch; and how many
        ops that is. A writer that keeps up merges nothing; one behind (short reports, a
        slow server, an outage's backlog) makes one call of many reports."""
        op = self.journal.op(first)
        if op["op"] not in MERGEABLE:
            return op, 1
        metrics = list(op.get("metrics", []))
        params = list(op.get("params", []))
        tags = dict(op.get("tags", []))
        count, end = 1, len(self.journal)
        while first + count < end:
            nxt = self.journal.op(first + count)
            if nxt["op"] not in MERGEABLE or nxt["key"] != op["key"]:
                break
            more_params = nxt.get("params", [])
            more_tags = dict(nxt.get("tags", []))
            if (
                len(metrics) + len(nxt.get("metrics", [])) > MERGE_METRICS
                or len(params) + len(more_params) > MERGE_PARAMS
                or len(tags.keys() | more_tags.keys()) > MERGE_TAGS
                # MLflow refuses a batch that names a param twice
                or {k for k, _ in more_params} & {k for k, _ in params}
            ):
                break
            metrics += nxt.get("metrics", [])
            params += more_params
            tags.update(more_tags)  # a later value of a tag wins, as applied one by one
            count += 1
        if count == 1:
            return op, 1
        merged = {"op": "log_batch", "key": op["key"], "metrics": metrics, "params": params}
        merged["tags"] = [[k, v] for k, v in tags.items()]
        return merged, count

    def _give_up(self, op: dict[str, Any], exc: Exception) -> None:
        log.warning("MLflow rejected %s (%s); kept in %s", op.get("op"), _short(exc), FAILED_FILE)
        with (self.journal.root / FAILED_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps({"op": op, "error": _short(exc)}, default=str) + "\n")

    @property
    def client(self) -> Any:
        if self._client is None:
            # our own retry loop replaces the client's: its default (7 retries, exponential
            # back-off) would hold one call for minutes during an outage
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
            # "View run ... at" lines from a background thread would garble the live table
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
            from orchestrator.tracking.store_init import open_client

            self._client = open_client(self.uri)
        return self._client

    def _run_id(self, key: str) -> str:
        try:
            return self.state.runs[key]
        except KeyError:
            raise _Rejected(f"run {key!r} was never created") from None

    def _apply(self, op: dict[str, Any]) -> None:
        kind = op["op"]
        handler = getattr(self, f"_op_{kind}", None)
        if handler is None:
            raise _Rejected(f"unknown journal op {kind!r}")
        handler(op)

    def _op_experiment(self, op: dict[str, Any]) -> None:
        found = self.client.get_experiment_by_name(op["name"])
        self.state.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(op["name"])
        )
        # a kind someone chose in the UI stays; an experiment without one would open on
        # MLflow's GenAI view
        if found is None or EXPERIMENT_KIND_TAG not in found.tags:
            self.client.set_experiment_tag(
                self.state.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )

    def _op_create_run(self, op: dict[str, Any]) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        key = op["key"]
        if key in self.state.runs:
            return
        journal_key = f"{self.uid}/{key}"
        if self._recovering:
            found = self.client.search_runs(
                [self.state.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{journal_key}'"
            )
            if found:
                self.state.runs[key] = found[0].info.run_id
                return
        tags = {**op.get("tags", {}), RUN_KEY_TAG: journal_key}
        parent = op.get("parent")
        if parent:
            tags[MLFLOW_PARENT_RUN_ID] = self._run_id(parent)
        run = self.client.create_run(
            self.state.experiment_id,
            run_name=op.get("name"),
            tags=tags,
            start_time=op.get("time"),
        )
        self.state.runs[key] = run.info.run_id

    def _op_log_batch(self, op: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run_id = self._run_id(op["key"])
        metrics = [Metric(k, float(v), int(t), int(s)) for k, v, t, s in op.get("metrics", [])]
        params = [Param(k, v) for k, v in op.get("params", [])]
        tags = [RunTag(k, v) for k, v in op.get("tags", [])]
        # MLflow caps one batch at 1000 metrics, 100 params, 100 tags (1000 items in all)
        if len(metrics) <= 800 and len(params) <= 100 and len(tags) <= 100:
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            return
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(tags), 100):
            self.client.log_batch(run_id, tags=tags[i : i + 100])

    def _op_log_system(self, op: dict[str, Any]) -> None:
        """System metrics of a trial (a ``log_batch`` the journal keeps apart from the
        training steps it tracks for resume)."""
        self._op_log_batch(op)

    def _op_set_status(self, op: dict[str, Any]) -> None:
        run_id = self._run_id(op["key"])
        if op["status"] == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=op["status"], end_time=op.get("time"))

    def _op_delete_run(self, op: dict[str, Any]) -> None:
        # MLflow's soft delete: the run stays restorable; deleting it twice is harmless
        self.client.delete_run(self._run_id(op["key"]))

    def _op_artifacts(self, op: dict[str, Any]) -> None:
        run_id = self._run_id(op["key"])
        path = op["path"]
        if not os.path.exists(path):
            raise _Rejected(f"artifact {path} no longer exists")
        if os.path.isdir(path):
            self.client.log_artifacts(run_id, path, op.get("artifact_path"))
        else:
            self.client.log_artifact(run_id, path, op.get("artifact_path"))

    def _op_logged_model(self, op: dict[str, Any]) -> None:
        """The trial's weights folder as an MLflow 3 logged model of its run.

        Replay-safe: the model is found again by its journal-key tag, its artifacts are
        uploaded again only while it is not READY, and the run's output link and the
        model's metrics are written only when missing (MLflow drops duplicate metrics).
        """
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric

        run_id = self._run_id(op["key"])
        path = op["path"]
        model = self._logged_model(op["key"], op["name"])
        if model is None or model.status != LoggedModelStatus.READY:
            if not os.path.isdir(path):
                raise _Rejected(f"model folder {path} no longer exists")
            if model is None:
                run = self.client.get_run(run_id)
                model = self.client.create_logged_model(
                    self.state.experiment_id,
                    name=op["name"],
                    source_run_id=run_id,
                    tags={
                        **op.get("tags", {}),
                        RUN_KEY_TAG: self._model_key(op["key"], op["name"]),
                    },
                    params=dict(run.data.params),
                    model_type=op.get("model_type"),
                )
            self.client.log_model_artifacts(model.model_id, path)
            self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        run = self.client.get_run(run_id)
        at = op.get("step")  # a kept checkpoint's: the values of its own report
        latest = []
        for k in run.data.metrics:
            if not k.startswith(MODEL_METRIC_PREFIXES):
                continue
            history = [
                m for m in self.client.get_metric_history(run_id, k) if at is None or m.step == at
            ]
            if history:
                latest.append(max(history, key=lambda m: (m.step, m.timestamp)))
        step = at if at is not None else max((m.step for m in latest), default=0)
        outputs = run.outputs.model_outputs if run.outputs else []
        if not any(o.model_id == model.model_id for o in outputs):
            self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
        if latest:
            # the run's last values, linked to the model: what MLflow's model view and
            # search_logged_models(order_by=metrics...) rank by
            self.client.log_batch(
                run_id,
                metrics=[
                    Metric(m.key, m.value, m.timestamp, m.step, model_id=model.model_id)
                    for m in latest
                ],
            )

    def _model_key(self, key: str, name: str) -> str:
        return f"{self.uid}/{key}/{name}"

    def _logged_model(self, key: str, name: str) -> Any:
        """The logged model a previous ``logged_model`` op made for run ``key``, or None."""
        found = self.client.search_logged_models(
            [self.state.experiment_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{self._model_key(key, name)}'",
            max_results=1,
        )
        return found[0] if found else None

    def _op_inputs(self, op: dict[str, Any]) -> None:
        """Datasets a run used (MLflow ignores a dataset the run already has)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        run_id = self._run_id(op["key"])
        inputs = [
            DatasetInput(
                Dataset(
                    name=d["name"],
                    digest=d["digest"],
                    source_type=d["source_type"],
                    source=d["source"],
                    schema=d.get("schema"),
                    profile=d.get("profile"),
                ),
                [InputTag("mlflow.data.context", d["context"])],
            )
            for d in op["datasets"]
        ]
        self.client.log_inputs(run_id, inputs)

    def _op_register(self, op: dict[str, Any]) -> None:
        from mlflow.exceptions import MlflowException

        run_id = self._run_id(op["key"])
        name = op["name"]
        try:
            self.client.create_registered_model(name, description=op.get("description"))
        except MlflowException as exc:
            if str(exc.error_code) != "RESOURCE_ALREADY_EXISTS":
                raise
        source = op["source"].format(run_id=run_id)
        model = self._logged_model(op["key"], op["model"]) if op.get("model") else None
        if model is not None:
            source = f"models:/{model.model_id}"  # the version points at the logged model
        # a replay after a kill must not register the same run twice
        existing = [
            v
            for v in self.client.search_model_versions(f"name='{name}'")
            if v.run_id == run_id and v.source == source
        ]
        if existing:
            version = existing[0].version
        else:
            from mlflow.tracking._tracking_service.utils import _use_tracking_uri

            # a local store resolves ``models:/<id>`` with the process's default tracking
            # URI (MLflow 3.17 builds a fresh MlflowClient()), so it must be this store's
            with _use_tracking_uri(self.uri):
                version = self.client.create_model_version(
                    name,
                    source=source,
                    run_id=run_id,
                    tags={k: self._resolve(v) for k, v in op.get("tags", {}).items()},
                    model_id=model.model_id if model is not None else None,
                ).version
        self.client.set_registered_model_alias(name, op["alias"], version)
        self.state.versions[name] = str(version)
        parent = self.state.runs.get(SWEEP_KEY)
        if parent:
            self.client.set_tag(parent, REGISTERED_VERSION, str(version))

    def _resolve(self, value: str) -> str:
        # tags may name a run by key ("run:sweep"): its id is known only now
        if isinstance(value, str) and value.startswith("run:"):
            return self.state.runs.get(value[4:], "")
        return str(value)


class _Rejected(Exception):
    error_code = "INVALID_STATE"


def _short(exc: BaseException) -> str:
    # MLflow's messages quote the request URL, user info included
    text = mask_userinfo(str(exc)).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

"""The Tune function trainable that runs one trial.

One worker: the loop runs inside the Tune trial process (launching a Ray Train job would
cost ~15 s per trial for nothing). Several workers: the trial builds a Ray Train
``TorchTrainer`` whose workers run the same loop under DDP and whose reports reach Tune
through ``TuneReportCallback`` — the supported Train-in-Tune pattern of Ray Train V2.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.config.metrics import in_force_metrics
from orchestrator.config.models import Resources
from orchestrator.reserved import (
    EPOCH,
    ERROR_TYPE,
    SKIP_REASON,
    STOP_DETAIL,
    STOP_REASON,
    STOP_TRACEBACK,
)
from orchestrator.tasks import get_task
from orchestrator.training.spec import TrialSpec
from orchestrator.tuning.trial_end import FINISHED_FILE, ends_trial, write_json

log = logging.getLogger(__name__)

#: CPU a multi-worker trial's own process reserves when ``resources.trial_cpus`` is unset:
#: it only waits on its workers, and Ray rejects 0.
COORDINATOR_CPUS = 0.1
#: see :func:`_kill_after_reports`
KILL_AFTER_REPORTS_ENV = "ORCH_TEST_KILL_AFTER_REPORTS"
#: the Ray Train worker (world rank) that the hook kills in a multi-worker trial; unset: none
KILL_RANK_ENV = "ORCH_TEST_KILL_RANK"


def trial_resources(resources: Resources) -> dict[str, float]:
    """What the Tune trial process itself reserves."""
    if resources.workers == 1:
        own: dict[str, float] = {
            "cpu": resources.trial_cpus or resources.cpus_per_worker,
            "gpu": resources.gpus_per_worker,
        }
        if resources.memory_per_worker_gb:
            own["memory"] = resources.memory_per_worker_gb * 1024**3
        return {**own, **resources.custom_per_worker}
    return {"cpu": resources.trial_cpus or COORDINATOR_CPUS, "gpu": 0}


def cpus_per_trial(resources: Resources) -> float:
    """Logical CPUs one running trial holds, its workers included."""
    own = trial_resources(resources)["cpu"]
    if resources.workers == 1:
        return own
    return own + resources.workers * resources.cpus_per_worker


def make_trainable(
    sweep: dict[str, Any],
    data_root: str,
    resources: Resources,
    storage_path: str,
    in_force: Sequence[str] = (),
) -> Callable[[dict[str, Any]], None]:
    """A function trainable closed over the validated sweep (plain data, picklable).

    ``in_force``: the ``space:`` keys a population scheduler changes while a trial runs;
    every epoch's report carries their values as ``hp/<key>`` (docs/pbt.md)."""

    def trainable(params: dict[str, Any]) -> None:
        if SKIP_REASON in params:
            return  # impossible batch combination: nothing to train, nothing to report
        from ray import tune

        trial_dir = trial_folder()
        finished = os.path.join(trial_dir, FINISHED_FILE)
        # a task that trains outside this process (an external command) runs its own trial
        runner = get_task(sweep["task"]["kind"]).trial_runner()
        # a one-worker trial Tune restarted (or a resumed sweep continues) starts after its
        # last checkpoint
        one_worker = runner is None and resources.workers == 1
        restored = _restored_state(tune.get_checkpoint()) if one_worker else None
        if runner is not None:
            from orchestrator.training.command_trial import read_state

            # an external command's trial keeps its own small state (the script saves its
            # weights where it likes): the epochs reported and the divergence history
            restored = read_state(tune.get_checkpoint())
        own_id = tune.get_context().get_trial_id()
        if restored is not None and restored.get("trial_id") not in ("", None, own_id):
            # a population scheduler cloned another member into this trial: the end this
            # trial reported before (a divergence that got it replaced) is not its end now
            with contextlib.suppress(FileNotFoundError):
                os.remove(finished)
        if os.path.isfile(finished):
            # a resumed sweep: this trial ended after Tune's last snapshot and before the
            # driver was killed; its last report stands, nothing is trained again
            with open(finished, encoding="utf-8") as f:
                tune.report(json.load(f))
            return
        # rank 0 writes the final weights (model.pt) and batch plan into the trial's folder
        output_dir = os.path.join(trial_dir, "model")
        spec = TrialSpec(
            sweep=sweep,
            params=params,
            data_root=data_root,
            output_dir=output_dir,
            memory_cache=os.path.join(storage_path, "memory.json"),
            trial_id=own_id,
            trial_name=tune.get_context().get_trial_name(),
            trial_dir=trial_dir,
        )
        last: dict[str, Any] = {}
        epochs = int(sweep["train"]["epochs"])
        # a multi-worker trial's rank 0 samples where the training runs, not this process
        sampler = start_sampler(sweep) if resources.workers == 1 or runner else None
        kill = _kill_after_reports(restored)

        def report(metrics: dict[str, Any], checkpoint: str | None = None) -> None:
            if in_force and EPOCH in metrics:
                metrics = {**metrics, **in_force_metrics(params, in_force, sweep["space"])}
            last.clear()
            last.update(metrics)
            if ends_trial(metrics, epochs):
                # before the report: Ray may end this trial inside it (ASHA at max_t)
                write_json(finished, metrics)
            metrics = sampler.attach(metrics) if sampler else metrics
            if checkpoint is None:
                tune.report(metrics)
            else:
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint))
            kill()

        try:
            if runner is not None:
                context = tune.get_context()
                runner(
                    spec,
                    report,
                    trial_id=context.get_trial_id(),
                    trial_name=context.get_trial_name(),
                    trial_dir=trial_dir,
                    restored=restored,
                    checkpoints=sweep["train"].get("checkpoint") is not None,
                )
            elif resources.workers == 1:
                # the built-in loop, or the task's own (``python``: the user's function)
                trial_loop = get_task(sweep["task"]["kind"]).trial_loop()
                trial_loop(spec, report, restored, checkpoints=True)
            else:
                last.update(_run_ddp(spec, resources, storage_path, finished))
            if not os.path.isfile(finished):
                write_json(finished, last)  # a trial that ended without a last-epoch report
        except Exception as exc:
            from orchestrator.tuning.failures import classify, describe, root_cause

            if classify(exc) == "infrastructure":
                raise  # Tune restarts the trial (sweep.max_retries)
            # the trial's own fault: it would fail the same way again, so end it here with
            # the cause on record instead of letting Tune retry it
            log.exception("trial failed deterministically; not retried")
            import traceback

            lines = traceback.format_exception(exc)
            tail = (
                "".join([*lines[:1], "...\n", *lines[-11:]]) if len(lines) > 12 else "".join(lines)
            )
            tail = tail[-4000:]
            failure = {
                STOP_REASON: "error",
                STOP_DETAIL: describe(exc),
                ERROR_TYPE: type(root_cause(exc)).__name__,
                # an orch.stop* key: the tracker stores it as a tag of the child run
                STOP_TRACEBACK: tail,
            }
            write_json(finished, failure)
            tune.report(failure)
        finally:
            if sampler is not None:
                sampler.stop()

    return trainable


def trial_folder() -> str:
    """This trial's folder in the sweep's storage, ``<sweep>/ray/<experiment>/<trial>``: the
    one the driver reads (``Trial.path``) and a resumed sweep finds again.

    Not ``get_trial_dir()``: that is a staging folder under /tmp/ray/session_* which Tune
    copies into storage now and then (a kill loses what was written since, a copy rewrites
    files already there, a big model is stored twice), and a Tune actor reused for another
    trial gets a different one (``FunctionTrainable.reset_config``) that is never copied.
    """
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None:
        raise RuntimeError("trial_folder() is called inside a Tune trial only")
    folder = str(session.storage.trial_fs_path)
    os.makedirs(folder, exist_ok=True)
    return folder


def start_sampler(sweep: dict[str, Any]) -> Any:
    """This process's system-metrics sampler, started; None when tracking or sampling is
    off (``tracking.system_metrics_s: 0``) or psutil is missing."""
    tracking = sweep.get("tracking", {})
    interval = float(tracking.get("system_metrics_s", 0) or 0)
    if not tracking.get("enabled", True) or interval <= 0:
        return None
    try:
        from orchestrator.training.system_metrics import SystemSampler

        return SystemSampler(interval).start()
    except ImportError:
        return None


def runner_of(sweep: dict[str, Any]) -> Any:
    """The task's own trial runner (an external command), or None for the built-in loop."""
    return get_task(sweep["task"]["kind"]).trial_runner()


def _restored_state(checkpoint: Any, rank: int = 0) -> dict[str, Any] | None:
    """``rank``'s state in the trial's latest checkpoint, or None (a first attempt)."""
    if checkpoint is None:
        return None
    from pathlib import Path

    from orchestrator.training.checkpoint import load

    with checkpoint.as_directory() as folder:
        return load(Path(folder), rank=rank)


def _kill_after_reports(restored: dict[str, Any] | None) -> Callable[[], None]:
    """A test hook for the fault tests: with ``ORCH_TEST_KILL_AFTER_REPORTS=N``, a trial that
    was not restored from a checkpoint SIGKILLs its own process after its N-th report, as a
    node or OOM killer would (in a multi-worker trial, only the worker whose rank
    ``ORCH_TEST_KILL_RANK`` names)."""
    limit = int(os.environ.get(KILL_AFTER_REPORTS_ENV, "0") or 0)
    done = [0]

    def after_report() -> None:
        done[0] += 1
        if limit and restored is None and done[0] >= limit:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    return after_report


def _kill_worker_after_reports(trial_dir: str | None, rank: int) -> Callable[[], None]:
    """The fault tests' hook in a Ray Train worker: the worker of rank ``ORCH_TEST_KILL_RANK``
    SIGKILLs itself a few seconds after its ``ORCH_TEST_KILL_AFTER_REPORTS``-th report
    (mid-epoch, once Ray Train has taken the report), once per trial: a marker in the
    trial's folder keeps the retries alive however far back they restart."""
    if not trial_dir or os.environ.get(KILL_RANK_ENV, "") != str(rank):
        return lambda: None
    marker = os.path.join(trial_dir, f"test-killed-rank-{rank}")
    limit = int(os.environ.get(KILL_AFTER_REPORTS_ENV, "0") or 0)
    done = [0]

    def after_report() -> None:
        done[0] += 1
        if limit and done[0] == limit and not os.path.exists(marker):
            import signal
            import time

            open(marker, "w").close()
            time.sleep(3)
            os.kill(os.getpid(), signal.SIGKILL)

    return after_report


def _worker_loop(config: dict[str, Any]) -> None:
    import ray.train

    spec: TrialSpec = config["spec"]
    finished: str = config["finished"]
    epochs = int(spec.sweep["train"]["epochs"])
    rank = ray.train.get_context().get_world_rank()

    sampler = start_sampler(spec.sweep) if rank == 0 else None

    def report(metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        if rank == 0 and ends_trial(metrics, epochs):
            write_json(finished, metrics)  # before the report, which Ray may not return from
        # every rank's state-<rank>.pt goes into the same checkpoint folder
        saved = ray.train.Checkpoint.from_directory(checkpoint) if checkpoint else None
        ray.train.report(sampler.attach(metrics) if sampler else metrics, checkpoint=saved)
        kill()

    # a trial Tune restarted builds a Train run of the same name and storage folder, whose
    # latest checkpoint Ray Train V2 restores (its checkpoint manager's snapshot there):
    # Tune itself never holds one of a multi-worker trial (TuneReportCallback passes it
    # only the checkpoint's path, as a metric)
    restored = _restored_state(ray.train.get_checkpoint(), rank)
    kill = _kill_worker_after_reports(spec.trial_dir, rank)
    trial_loop = get_task(spec.sweep["task"]["kind"]).trial_loop()
    try:
        trial_loop(spec, report, restored, checkpoints=True)
    finally:
        if sampler is not None:
            sampler.stop()


def _run_ddp(
    spec: TrialSpec, resources: Resources, storage_path: str, finished: str
) -> dict[str, Any]:
    """Train under DDP; returns the last metrics the workers reported."""
    from ray import tune
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    use_gpu = resources.gpus_per_worker > 0
    kept = spec.sweep["train"].get("checkpoint")
    per_worker: dict[str, float] = {"CPU": resources.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    if resources.memory_per_worker_gb:
        per_worker["memory"] = resources.memory_per_worker_gb * 1024**3
    per_worker.update(resources.custom_per_worker)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"spec": spec, "finished": finished},
        scaling_config=ScalingConfig(
            num_workers=resources.workers, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=f"train-{tune.get_context().get_trial_id()}",
            storage_path=storage_path,
            checkpoint_config=CheckpointConfig(num_to_keep=kept["keep"] if kept else None),
            # a Ray Train V2 UserCallback; Ray types RunConfig.callbacks as Tune callbacks
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]
        ),
    )
    return dict(trainer.fit().metrics or {})

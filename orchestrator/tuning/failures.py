"""Typed trial failures: retry what the infrastructure broke, never what the trial itself did.

A trial that raises because of its own hyperparameters (a shape error, an assertion in the
loss, a NaN check in a library) would raise again on every retry, so retrying wastes the
budget and hides the real cause. A trial whose worker died, whose node went away, whose
process was preempted or ran out of memory may well succeed when restarted. Ray Tune can
only retry every failure or none (``FailureConfig.max_failures``), so the trainable sorts
them: infrastructure failures are re-raised for Tune to retry, deterministic ones end the
trial with ``orch.stop_reason = error`` and the exception in ``orch.stop_detail``.

Classification is by class name along the exception's cause chain (and the per-worker
failures of a Ray Train error), so it needs no import of Ray or torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

Kind = Literal["infrastructure", "deterministic"]

#: exception class names (anywhere in the MRO) that mean "the machine, not the trial"
INFRA_CLASSES = frozenset(
    {
        # memory: the same trial may fit after a restart on a quieter node (and issue 5's
        # back-off shrinks the micro-batch); host memory errors are the same story
        "OutOfMemoryError",  # torch.OutOfMemoryError, ray.exceptions.OutOfMemoryError
        "MemoryError",
        # Ray: a worker, actor, node or object owner went away
        "RayActorError",
        "ActorDiedError",
        "ActorUnavailableError",
        "WorkerCrashedError",
        "NodeDiedError",
        "OwnerDiedError",
        "ObjectLostError",
        "RaySystemError",
        "LocalRayletDiedError",
        # torch.distributed: a peer vanished or the rendezvous timed out
        "DistBackendError",
        "DistNetworkError",
        "DistStoreError",
        # networking to storage / tracking, and preemption signals
        "ConnectionError",
        "TimeoutError",
        "Preempted",
        "PreemptionError",
    }
)

#: fragments of a message that mean the same when the class says nothing (a RuntimeError
#: re-raised from CUDA or NCCL)
INFRA_MESSAGES = (
    "out of memory",
    "cuda error: an illegal memory access",  # usually a dying GPU or a killed peer
    "nccl error",
    "connection reset by peer",
    "the actor died",
    "worker died",
    "node died",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the per-worker errors of Ray Train failures."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                stack.append(nxt)
        # Ray Train V2's TrainingFailedError / WorkerGroupError keep each rank's exception
        failures = getattr(e, "worker_failures", None)
        if isinstance(failures, dict):
            stack.extend(v for v in failures.values() if isinstance(v, BaseException))
        for attr in ("cause", "controller_failure"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                stack.append(inner)


def classify(exc: BaseException) -> Kind:
    """``infrastructure`` (worth a retry) or ``deterministic`` (would fail again)."""
    for e in _chain(exc):
        if any(cls.__name__ in INFRA_CLASSES for cls in type(e).__mro__):
            return "infrastructure"
        message = str(e).lower()
        if any(fragment in message for fragment in INFRA_MESSAGES):
            return "infrastructure"
    return "deterministic"


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception (first rank's, for a Ray Train failure): what to show first."""
    e, seen = exc, set()
    while id(e) not in seen:
        seen.add(id(e))
        failures = getattr(e, "worker_failures", None)
        inner: object = None
        if isinstance(failures, dict) and failures:
            inner = failures[min(failures)]
        inner = inner or e.__cause__ or e.__context__
        if not isinstance(inner, BaseException):
            break
        e = inner
    return e


def describe(exc: BaseException, limit: int = 500) -> str:
    """``Type: message`` of the root cause, on one line, at most ``limit`` characters."""
    root = root_cause(exc)
    text = f"{type(root).__name__}: {root}".replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."

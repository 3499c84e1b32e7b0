"""Effective batch arithmetic: accumulation = effective / (micro * workers), whole and >= 1;
the micro-batch back-off ladder; learning-rate scaling with the effective batch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: ``batch.micro: auto``: the trial picks the micro-batch itself
AUTO = "auto"


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's ``effective`` samples are split across workers and passes."""

    effective: int
    micro: int
    workers: int
    accum: int


def batch_problem(effective: int, micro: int | str, workers: int) -> str | None:
    """Why ``effective``/``micro``/``workers`` cannot be combined, or None if they can.

    ``micro: auto`` only needs ``effective`` to split evenly across the workers.
    """
    if micro == AUTO:
        if effective % workers:
            return (
                f"effective batch {effective} does not split evenly across {workers} workers, "
                "so no micro-batch can be chosen"
            )
        return None
    assert isinstance(micro, int)
    per_step = micro * workers
    if per_step > effective:
        return (
            f"micro-batch {micro} x {workers} worker(s) = {per_step} samples per pass "
            f"exceeds the effective batch {effective}"
        )
    if effective % per_step:
        return (
            f"effective batch {effective} is not a multiple of micro-batch {micro} x "
            f"{workers} worker(s) = {per_step}, so gradient accumulation would not be whole"
        )
    return None


def plan_batch(effective: int, micro: int, workers: int) -> BatchPlan:
    """The :class:`BatchPlan`; ValueError with :func:`batch_problem`'s reason if impossible."""
    problem = batch_problem(effective, micro, workers)
    if problem:
        raise ValueError(problem)
    return BatchPlan(effective, micro, workers, effective // (micro * workers))


def micro_candidates(effective: int, workers: int) -> list[int]:
    """Every micro-batch that divides ``effective / workers``, largest first."""
    per_worker = effective // workers
    return [m for m in range(per_worker, 0, -1) if per_worker % m == 0]


def backoff_micro(effective: int, micro: int, workers: int) -> int | None:
    """The micro-batch after an out-of-memory error: the largest valid one <= ``micro / 2``
    (so accumulation at least doubles and the effective batch is unchanged); ``None`` at 1."""
    smaller = [m for m in micro_candidates(effective, workers) if m <= micro // 2]
    return smaller[0] if smaller else None


LrScaling = Literal["none", "linear", "sqrt"]


def scaled_lr(lr: float, effective: int, reference: int, rule: LrScaling) -> float:
    """``lr`` for ``effective`` samples per step, given it was tuned at ``reference``.

    ``linear``: lr x effective/reference (Goyal et al. 2017, SGD); ``sqrt``: lr x
    sqrt(effective/reference) (keeps the gradient-noise scale, common with Adam); ``none``.
    """
    if rule == "none":
        return lr
    ratio = effective / reference
    return lr * (ratio if rule == "linear" else math.sqrt(ratio))

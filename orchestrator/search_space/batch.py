"""Effective batch arithmetic: accumulation = effective / (micro * workers), whole and >= 1."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's ``effective`` samples are split across workers and passes."""

    effective: int
    micro: int
    workers: int
    accum: int


def batch_problem(effective: int, micro: int, workers: int) -> str | None:
    """Why ``effective``/``micro``/``workers`` cannot be combined, or None if they can."""
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

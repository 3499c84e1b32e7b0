"""Typed trial failures, worst-value substitution, and the summary's stop lines."""

from __future__ import annotations

import math

import pytest

from orchestrator.tuning.failures import classify, describe, root_cause
from orchestrator.tuning.schedulers import WORST, with_worst_objective, worst_value
from orchestrator.tuning.summary import SweepSummary, TrialRow, render_summary


class ActorDiedError(RuntimeError):
    """Named like Ray's: classification goes by class name, with no Ray import."""


class TrainingFailedError(RuntimeError):
    def __init__(self, failures: dict[int, BaseException]) -> None:
        super().__init__("Training failed")
        self.worker_failures = failures


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException as inner:
            raise exc from inner
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ValueError("shape mismatch"), "deterministic"),
        (AssertionError("loss must be positive"), "deterministic"),
        (MemoryError(), "infrastructure"),
        (ActorDiedError("gone"), "infrastructure"),
        (ConnectionResetError("peer"), "infrastructure"),  # a ConnectionError subclass
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "infrastructure"),
        (RuntimeError("NCCL error in: ProcessGroupNCCL.cpp"), "infrastructure"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    assert classify(exc) == kind


def test_classify_follows_causes_and_ray_train_worker_failures() -> None:
    wrapped = _raised(RuntimeError("trial failed"), ActorDiedError("worker 1 died"))
    assert classify(wrapped) == "infrastructure"
    train = TrainingFailedError({1: ValueError("bad loss"), 0: ValueError("bad loss rank 0")})
    assert classify(train) == "deterministic"
    assert type(root_cause(train)) is ValueError and str(root_cause(train)) == "bad loss rank 0"
    assert classify(TrainingFailedError({0: MemoryError("oom")})) == "infrastructure"


def test_describe_is_one_line_of_the_root_cause() -> None:
    exc = _raised(RuntimeError("outer"), ValueError("line one\nline two"))
    assert describe(exc) == "ValueError: line one line two"
    assert len(describe(ValueError("x" * 2000), limit=50)) == 50


def test_worst_value_replaces_nan_inf_and_missing_only() -> None:
    assert worst_value("max") == -WORST and worst_value("min") == WORST
    assert with_worst_objective({"m": math.nan}, "m", "max") == {"m": -WORST}
    assert with_worst_objective({"m": math.inf}, "m", "min") == {"m": WORST}
    # an evaluation not due this report is skipped; missing at the end counts as worst
    assert with_worst_objective({"x": 1}, "m", "min") == {"x": 1}
    assert with_worst_objective({}, "m", "min", final=True) == {"m": WORST}
    assert with_worst_objective({"orch.stop_reason": "spike"}, "m", "max")["m"] == -WORST
    ok = {"m": 0.25}
    assert with_worst_objective(ok, "m", "max") is ok


def test_summary_lists_early_stops_with_reason_step_and_detail() -> None:
    rows = [
        TrialRow("trial-1", "a", "done", "", {}, {"val/map": 0.4}, 10),
        TrialRow(
            "trial-2",
            "b",
            "done",
            "scheduler",
            {},
            {"val/map": 0.1},
            3,
            stop_detail="ASHA rung at epoch 3: val/map 0.1 below the rung's cutoff 0.3",
            stopped_by="asha",
        ),
        TrialRow(
            "trial-3",
            "c",
            "done",
            "component_explosion:loss_giou",
            {},
            {"val/map": 0.05},
            4,
            stop_detail="train/raw_giou = 12 > 10 × best value 1.1",
            stop_step=160,
        ),
    ]
    summary = SweepSummary("s", "/tmp/s", None, None, [{"metric": "val/map", "mode": "max"}], rows)
    text = render_summary(summary, None)
    assert "Stopped early:" in text
    assert (
        "trial-3: component_explosion:loss_giou at step 160 (epoch 4) - "
        "train/raw_giou = 12 > 10 × best value 1.1"
    ) in text
    # scheduler cuts are listed too, with who cut them and at which rung
    assert (
        "trial-2: scheduler (asha) (epoch 3) - ASHA rung at epoch 3: val/map 0.1 below "
        "the rung's cutoff 0.3"
    ) in text
    assert "trial-1:" not in text
    assert "1 component_explosion:loss_giou" in text and "1 scheduler" in text

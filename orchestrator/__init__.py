"""orchestrator: loss- and batch-hyperparameter sweeps for detectors and taggers.

The public entry points are the ``orchestrate`` CLI (:mod:`orchestrator.cli`),
:func:`orchestrator.config.load_sweep` and :func:`orchestrator.tuning.run_sweep`; inside a
``task.kind: python`` trial, :func:`report` and :func:`get_trial`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.training.python_trial import Trial

__version__ = "0.1.0"


def report(metrics: dict[str, Any], *, step: int | None = None) -> None:
    """Report one epoch of a ``task.kind: python`` trial (see
    :func:`orchestrator.training.python_trial.report`)."""
    # imported here: ``import orchestrator`` must not pull in torch (the CLI starts fast)
    from orchestrator.training.python_trial import report as _report

    _report(metrics, step=step)


def get_trial() -> Trial:
    """The running trial: sampled params, every hyperparameter, folders, rank (see
    :class:`orchestrator.training.python_trial.Trial`)."""
    from orchestrator.training.python_trial import get_trial as _get_trial

    return _get_trial()

"""orchestrator: loss- and batch-hyperparameter sweeps for detectors and taggers.

The public entry points are the ``orchestrate`` CLI (:mod:`orchestrator.cli`),
:func:`orchestrator.config.load_sweep` and :func:`orchestrator.tuning.run_sweep`.
"""

__version__ = "0.1.0"

"""``task.kind: python``: the user's own training function as the trial, reporting through
:func:`orchestrator.report` (config, the per-trial context and the worker loop)."""

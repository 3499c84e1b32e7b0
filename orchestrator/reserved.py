"""Keys the orchestrator itself writes into trial reports and MLflow tags (``orch.*``).

Torch-, Ray- and MLflow-free, so the trial loop, the Tune driver and the replay tool share
them without importing each other.
"""

#: why a trial stopped before its last epoch: a rule code (``nonfinite``, ``spike``,
#: ``component_explosion:loss_giou``), ``scheduler``, ``error`` or ``skipped``
STOP_REASON = "orch.stop_reason"
#: one human sentence with the values that triggered the stop
STOP_DETAIL = "orch.stop_detail"
#: who stopped a trial the scheduler cut early: ``asha``, ``median``
STOPPED_BY = "orch.stopped_by"
#: the optimizer step the trial had reached when it was stopped
STOP_STEP = "orch.stop_step"
#: the exception type of a trial that failed deterministically (not retried)
ERROR_TYPE = "orch.error_type"
#: the last output lines of an external command that failed or was stopped for a timeout
STOP_OUTPUT = "orch.stop_output"
#: system-metric samples a trial reports since its previous report:
#: ``[[time_ms, {name: value}], ...]`` (``training/system_metrics.py``)
SYSTEM_SAMPLES = "orch.system_samples"

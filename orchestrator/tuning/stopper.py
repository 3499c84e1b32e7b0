"""The divergence rules as a Ray Tune stopper, beside the scheduler.

Tune asks the stopper about every result before the scheduler sees it. When a rule fires,
the stopper writes the reason into that result (``orch.stop_reason``, ``orch.stop_detail``,
``orch.stop_step``) before returning True: Tune hands the same dict to the callbacks (it
documents that callbacks may modify a result in place), stores it as the trial's last result
and passes it to the searcher's ``on_trial_complete``. So MLflow, the progress table, the
result table and the searcher all read the reason from one place, with no side ledger.

The trial loop runs the same rules itself (every DDP rank agrees there, so no worker hangs);
a result that already carries a reason is a trial that stopped itself, and it is kept as is.
This stopper is what stops trainables that do not run our loop, and it is the backstop if a
trial's own check is switched off.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper

from orchestrator.divergence import DivergenceDetector, StopReason
from orchestrator.reserved import EPOCH, STEP, STOP_DETAIL, STOP_REASON, STOP_STEP

#: report keys the rules read; the rest of a result is Tune bookkeeping
WATCHED_PREFIXES = ("train/", "val/")


class DivergenceStopper(Stopper):
    """Stops a trial at the first report where ``detector`` fires; remembers why."""

    def __init__(self, detector: DivergenceDetector) -> None:
        self.detector = detector
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.reasons: dict[str, StopReason] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get(STOP_REASON):
            return True  # the trial stopped itself; its own reason stands
        history = self.histories.setdefault(trial_id, [])
        epoch = result.get(EPOCH)
        if isinstance(epoch, int) and epoch >= 1:
            # a trial Tune restarted reports again from its checkpoint's next epoch (or from
            # epoch 1 without one): what the dead attempt reported after that is not its past
            del history[epoch - 1 :]
        history.append({k: v for k, v in result.items() if k.startswith(WATCHED_PREFIXES)})
        reason = self.detector.check(history)
        if reason is None:
            return False
        self.reasons[trial_id] = reason
        result[STOP_REASON] = reason.code
        result[STOP_DETAIL] = reason.detail
        result[STOP_STEP] = result.get(STEP, result.get("training_iteration"))
        return True

    def stop_all(self) -> bool:
        return False

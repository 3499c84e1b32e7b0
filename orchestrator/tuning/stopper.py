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
from orchestrator.reserved import (
    EPOCH,
    PBT_CLONED_FROM,
    PBT_REPLACED,
    RESTORED_FROM_EPOCH,
    STEP,
    STOP_DETAIL,
    STOP_REASON,
    STOP_STEP,
)

#: report keys the rules read; the rest of a result is Tune bookkeeping
WATCHED_PREFIXES = ("train/", "val/")
#: stop reasons a trial reports that are no divergence: a clone would not fix them
NOT_DIVERGENCE = frozenset({"error", "oom", "timeout", "skipped"})


class DivergenceStopper(Stopper):
    """Stops a trial at the first report where ``detector`` fires; remembers why.

    ``replace_diverged`` (a population sweep, docs/pbt.md): a diverged member is not
    stopped here; its reason moves from ``orch.stop_reason`` to ``orch.pbt.replaced`` and
    the population scheduler, which sees the result next, replaces the member by a clone of
    a good one (or stops it with that reason when no member can be cloned yet). The result
    then carries no stop keys, so MLflow does not tag a member that goes on as stopped.
    """

    def __init__(self, detector: DivergenceDetector, *, replace_diverged: bool = False) -> None:
        self.detector = detector
        self.replace_diverged = replace_diverged
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.reasons: dict[str, StopReason] = {}
        #: trial id -> the (donor, epoch) its history was last cloned from
        self._cloned: dict[str, tuple[str, int]] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get(STOP_REASON):
            # the trial stopped itself; its own reason stands
            return self._stop(result)
        history = self.histories.setdefault(trial_id, [])
        epoch = result.get(EPOCH)
        self._follow_clone(trial_id, history, result)
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
        return self._stop(result)

    def _stop(self, result: dict[str, Any]) -> bool:
        if not self.replace_diverged or result[STOP_REASON] in NOT_DIVERGENCE:
            return True
        code = result.pop(STOP_REASON)
        detail = result.pop(STOP_DETAIL, "")
        result.pop(STOP_STEP, None)
        result[PBT_REPLACED] = f"{code}: {detail}"
        return False

    def _follow_clone(
        self, trial_id: str, history: list[dict[str, Any]], result: dict[str, Any]
    ) -> None:
        """A member that cloned another continues the donor's curve: its past (what the rules
        judge it on) becomes the donor's reports up to the cloned checkpoint's epoch, as the
        rules' history inside the trial did (the checkpoint carries it)."""
        donor, epoch = result.get(PBT_CLONED_FROM), result.get(RESTORED_FROM_EPOCH)
        if not isinstance(donor, str) or not isinstance(epoch, int):
            return
        if self._cloned.get(trial_id) == (donor, epoch) or donor == trial_id:
            return
        self._cloned[trial_id] = (donor, epoch)
        history[:] = [dict(r) for r in self.histories.get(donor, [])[:epoch]]

    def stop_all(self) -> bool:
        return False

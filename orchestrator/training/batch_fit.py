"""The trial's micro-batch: what earlier trials of the sweep learned, the ``micro: auto``
probe, and the back-off after an out-of-memory pass (docs/batch.md)."""

from __future__ import annotations

from orchestrator.config.batch import (
    AUTO,
    BatchPlan,
    backoff_micro,
    micro_candidates,
    plan_batch,
)
from orchestrator.training.collective import all_agree
from orchestrator.training.memory import check_simulated_limit, free_memory, is_oom
from orchestrator.training.memory_cache import NOTHING_FITS, lookup, memory_key, record
from orchestrator.training.parts import TrialParts
from orchestrator.training.spec import ResolvedTrial


class BatchFit:
    """The batch plan a trial trains with, and how it got there (``backoffs``)."""

    def __init__(self, trial: ResolvedTrial, memory_cache: str | None, *, main: bool) -> None:
        self.plan: BatchPlan = trial.plan
        #: ``"<micro>-><smaller>"`` for each out-of-memory back-off, oldest first
        self.backoffs: list[str] = []
        #: the micro-batch the trial started with (before any back-off); it sizes the
        #: evaluation's batches, which a restarted trial must keep to evaluate the same sums
        self.start_micro = self.plan.micro
        self._auto = trial.batch.micro == AUTO
        self._key = memory_key(trial, self.plan.micro if not self._auto else 0)
        self._cache = memory_cache
        # one rank writes what the trial learns; every rank reads the same verdicts
        self._learn = memory_cache if main else None

    def start(self, parts: TrialParts) -> str | None:
        """Choose the first plan: the one earlier trials found to fit, else (``micro:
        auto``) the probe's. Returns why nothing fits, or None."""
        known, fitted = lookup(self._cache, self._key)
        if known and fitted is NOTHING_FITS:
            return "an earlier trial of this sweep found that not even a micro-batch of 1 fits"
        if known and fitted is not None and fitted != self.plan.micro:
            self._use(parts, fitted)
        elif self._auto:
            probed = probe_micro(parts, self.plan)
            record(self._learn, self._key, probed)
            if probed is None:
                return "even a micro-batch of 1 does not fit"
            self._use(parts, probed)
            parts.optimizer.zero_grad(set_to_none=True)
        self.start_micro = self.plan.micro
        return None

    def back_off(self, parts: TrialParts) -> str | None:
        """After an out-of-memory pass: halve the micro-batch (same effective batch).
        Returns why it cannot, or None."""
        plan = self.plan
        smaller = backoff_micro(plan.effective, plan.micro, plan.workers)
        parts.optimizer.zero_grad(set_to_none=True)
        free_memory()
        if parts.deepspeed:
            return "DeepSpeed fixes the micro-batch when its engine is built"
        if smaller is None:
            record(self._learn, self._key, NOTHING_FITS)
            return "the micro-batch is already 1"
        self.backoffs.append(f"{plan.micro}->{smaller}")
        self._use(parts, smaller)
        record(self._learn, self._key, self.plan.micro)
        parts.accelerator.step = 0  # restart Accelerate's accumulation count for the redo
        return None

    def restore(
        self, micro: int, backoffs: list[str], start_micro: int, parts: TrialParts
    ) -> None:
        """Continue with the plan a checkpoint recorded (after its back-offs)."""
        self.backoffs = list(backoffs)
        self.start_micro = start_micro
        self._use(parts, micro)

    def _use(self, parts: TrialParts, micro: int) -> None:
        self.plan = plan_batch(self.plan.effective, micro, self.plan.workers)
        parts.accelerator.gradient_accumulation_steps = self.plan.accum


def probe_micro(parts: TrialParts, plan: BatchPlan) -> int | None:
    """``batch.micro: auto``: the largest micro-batch whose forward + backward fits.

    Each candidate (divisors of ``effective / workers``, largest first) gets one pass on real
    samples, without gradient sync; ranks agree on the first size that fits everywhere.
    """
    from accelerate.utils import send_to_device

    accelerator, model, task = parts.accelerator, parts.model, parts.task
    limit = parts.trial.backend.simulate_oom_above
    for micro in micro_candidates(plan.effective, plan.workers):
        failed = False
        try:
            check_simulated_limit(micro, limit)
            samples = [parts.train_set[i] for i in range(micro)]
            batch = send_to_device(task.collate(samples), accelerator.device)
            with accelerator.no_sync(model):
                accelerator.backward(task.loss(model, batch).total)
        except Exception as exc:
            if not is_oom(exc):
                raise
            failed = True
        model.zero_grad(set_to_none=True)
        free_memory()
        if not all_agree(accelerator, failed):
            return micro
    return None

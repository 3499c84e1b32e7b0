"""What ``pbt`` and ``pb2`` share: population-based training over ``space:`` keys.

Not a scheduler of its own (nothing is registered here): the base of :mod:`.pbt` and
:mod:`.pb2`. A population scheduler clones the weights of a good member into a poor one and
changes some of the clone's ``space:`` values (docs/pbt.md), so it needs what no other
scheduler needs, checked before anything starts:

- trial checkpoints (the clone restores one) taken at every perturbation point and kept
  until the members that clone them have restored them;
- keys whose change a restored trial can honour: not the batch plan, not what shapes the
  model or the optimizer's state, not a conditional key (absent from some members' configs);
- every member takes the same optimizer steps per epoch (``batch.effective`` not searched),
  so a clone's MLflow steps continue its own run's steps instead of going back in time.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from orchestrator.config.models import ParamSpec, SchedulerConfig, SweepConfig

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

#: keys fixed for a trial's whole run, and why: prefix -> reason
FIXED_FOR_A_RUN = {
    "batch.": "the batch plan is part of the cloned checkpoint",
    "backend.": "the backend is built once, when the trial starts",
    "train.epochs": "the budget is the same for every member",
    "train.seed": "the data order is part of the cloned checkpoint",
    "train.checkpoint": "checkpointing is what cloning relies on",
    "loss.weighting": "the weighting mode is calibrated once, when the trial starts",
    "loss.share.": "target_share weights are calibrated once, when the trial starts",
    "loss.cls": "the classification loss sets the model's head, so a clone's checkpoint "
    "would not load",
    "optim.name": "the optimizer's state in the cloned checkpoint belongs to one optimizer",
}

Problem = tuple[tuple[str, ...], str, Any]


def fixed_reason(key: str) -> str | None:
    """Why ``key`` cannot change inside a run, or None when it can."""
    for prefix, reason in FIXED_FOR_A_RUN.items():
        whole = prefix.rstrip(".")
        if key == whole or key.startswith(whole + "."):
            return reason
    return None


class PopulationScheduler(SchedulerConfig):
    """Settings of ``pbt`` and ``pb2``; budgets are in epochs (one report per epoch)."""

    #: a member is considered for cloning every this many epochs (a checkpoint must be
    #: taken at each of them: ``train.checkpoint.every`` divides it)
    perturbation_interval: int = Field(2, ge=1)
    #: the bottom fraction of the members clones the top fraction (0 < q <= 0.5)
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    #: the ``space:`` keys to change; null = every float/int range PBT/PB2 can change
    mutate: list[str] | None = None
    #: all members perturb at the same epochs (Ray's ``synch``): a clone continues at the
    #: epoch its donor's checkpoint ended, which is its own epoch too, so its MLflow curve
    #: neither skips nor repeats epochs. False: each member perturbs on its own schedule
    #: (no waiting for slow members; a clone may jump ahead or back, docs/pbt.md)
    synchronous: bool = True

    #: PBT may resample a categorical key; PB2 models continuous values only
    categorical: ClassVar[bool] = True

    def mutated_keys(self, space: dict[str, ParamSpec]) -> list[str]:
        if self.mutate is not None:
            return list(self.mutate)
        return [
            key
            for key, spec in space.items()
            if spec.kind != "choice" and spec.when is None and fixed_reason(key) is None
        ]

    def build(
        self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True
    ) -> TrialScheduler:
        raise ValueError(
            f"{self.kind} changes a trial's values and clones its weights while it runs; it "
            "needs the sweep's space (build_for) and cannot be replayed on recorded curves"
        )

    def build_for(self, config: SweepConfig) -> TrialScheduler:
        keys = self.mutated_keys(dict(config.space))
        return self._build(
            {k: config.space[k] for k in keys},
            config.primary.metric,
            config.primary.mode,
            config.train.epochs,
        )

    def _build(
        self, specs: dict[str, ParamSpec], metric: str, mode: str, last_epoch: int
    ) -> TrialScheduler:
        raise NotImplementedError  # each kind builds its Ray class

    def sweep_problems(self, config: SweepConfig) -> list[Problem]:
        here = ("stopping", "scheduler")
        problems: list[Problem] = []
        epochs = config.train.epochs
        interval = self.perturbation_interval
        if interval >= epochs:
            problems.append(
                (
                    (*here, "perturbation_interval"),
                    f"must be < train.epochs ({epochs}): members are perturbed at its "
                    "multiples before the last epoch",
                    interval,
                )
            )
        from orchestrator.config.task import get_task

        if get_task(config.task.kind).runner is not None:
            problems.append(
                (
                    (*here, "kind"),
                    f"{self.kind} clones trial checkpoints, which task.kind "
                    f"{config.task.kind!r} does not hand to Ray Tune; use a built-in task",
                    self.kind,
                )
            )
        if config.resources.workers > 1:
            problems.append(
                (
                    ("resources", "workers"),
                    f"{self.kind} runs one-worker trials: a multi-worker trial restores its "
                    "own Ray Train run's checkpoint, not a cloned member's",
                    config.resources.workers,
                )
            )
        kept = config.train.checkpoint
        if kept is None:
            problems.append(
                (
                    ("train", "checkpoint"),
                    f"stopping.scheduler.kind {self.kind} clones members' checkpoints: turn "
                    f"checkpoints on, e.g. {{every: 1, keep: {interval + 1}}}",
                    None,
                )
            )
        else:
            if interval % kept.every:
                problems.append(
                    (
                        ("train", "checkpoint", "every"),
                        f"must divide stopping.scheduler.perturbation_interval ({interval}): "
                        "a member is cloned from the checkpoint of a perturbation epoch",
                        kept.every,
                    )
                )
            # a donor runs on to the next perturbation point (interval / every more
            # checkpoints) while a clone may still wait to restore its checkpoint
            need = math.ceil(interval / kept.every) + 1
            if kept.keep < need:
                problems.append(
                    (
                        ("train", "checkpoint", "keep"),
                        f"must be >= {need} with perturbation_interval {interval} and every "
                        f"{kept.every}: a donor's checkpoint must outlive the next "
                        "perturbation, when the member cloning it may only just restore it",
                        kept.keep,
                    )
                )
        if config.sweep.num_samples < 2:
            problems.append(
                (
                    ("sweep", "num_samples"),
                    f"is the population of {self.kind} and must be >= 2",
                    config.sweep.num_samples,
                )
            )
        if "batch.effective" in config.space:
            problems.append(
                (
                    ("space", "batch.effective"),
                    f"cannot be searched with {self.kind}: members with different optimizer "
                    "steps per epoch cannot clone each other (a clone's MLflow steps would "
                    "go back or jump); fix batch.effective",
                    None,
                )
            )
        problems.extend(self._mutate_problems(config))
        return problems

    def _mutate_problems(self, config: SweepConfig) -> list[Problem]:
        where = ("stopping", "scheduler", "mutate")
        space = dict(config.space)
        keys = self.mutated_keys(space)
        if not keys:
            rule = (
                "lists no key"
                if self.mutate is not None
                else f"{self.kind} needs at least one float/int range in space that may change "
                "inside a run (not batch.*, not conditional); none found"
            )
            return [(where, rule, self.mutate)]
        problems: list[Problem] = []
        if len(set(keys)) != len(keys):
            problems.append((where, "lists a key twice", keys))
        for key in keys:
            spec = space.get(key)
            if spec is None:
                close = difflib.get_close_matches(key, list(space), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append((where, f"names a key that is not in space{hint}", key))
                continue
            reason = fixed_reason(key)
            if reason is not None:
                problems.append((where, f"{key} cannot change inside a run: {reason}", key))
            elif spec.when is not None:
                problems.append(
                    (
                        where,
                        f"{key} is conditional (when:), so some members have no value to "
                        "change; leave it out",
                        key,
                    )
                )
            elif spec.kind == "choice" and not self.categorical:
                problems.append(
                    (
                        where,
                        f"{key} is a choice; {self.kind} models continuous values only "
                        "(search it with float/int, or use kind: pbt)",
                        key,
                    )
                )
        return problems

"""Which samples each worker sees, so that one optimizer step always covers ``effective``.

For epoch ``e`` a seeded permutation is cut into optimizer steps of ``effective`` samples;
each step into ``accum`` passes; each pass into ``workers`` micro-batches of ``micro``.
Worker ``r`` takes micro-batch ``r`` of every pass. The samples an optimizer step sees are
therefore the same whatever the split: 1 worker x micro 16 x accum 1 and 2 workers x micro 4
x accum 2 see identical samples in step ``s``. Samples left over at the end of an epoch
(fewer than ``effective``) are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from orchestrator.config.batch import BatchPlan


class MicroBatchSampler(Sampler[list[int]]):
    """Yields worker ``rank``'s micro-batches (index lists) for the current epoch."""

    def __init__(self, num_samples: int, plan: BatchPlan, rank: int, seed: int) -> None:
        if num_samples < plan.effective:
            raise ValueError(
                f"the training set has {num_samples} samples, fewer than one effective "
                f"batch of {plan.effective}"
            )
        self.num_samples = num_samples
        self.plan = plan
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_samples // self.plan.effective

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Epoch ``epoch``'s permutation, from optimizer step ``start_step`` on (a step redone
        after an out-of-memory back-off gets the same samples, split differently)."""
        self.epoch = epoch
        self.start_step = start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.plan.accum

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.num_samples, generator=g)
        p = self.plan
        used = perm[: self.steps_per_epoch * p.effective]
        grid = used.view(self.steps_per_epoch, p.accum, p.workers, p.micro)
        for step in range(self.start_step, self.steps_per_epoch):
            for a in range(p.accum):
                yield grid[step, a, self.rank].tolist()

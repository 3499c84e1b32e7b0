"""Out-of-memory handling: recognise OOM, simulate it on a CPU, measure peak memory."""

from __future__ import annotations

import gc
import resource
import sys

import torch


class SimulatedOutOfMemory(torch.OutOfMemoryError):
    """Raised by :func:`check_simulated_limit`; handled exactly like a CUDA OOM."""


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` means "this step did not fit in memory" (CUDA, CPU allocator)."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    from accelerate.utils.memory import should_reduce_batch_size

    return isinstance(exc, Exception) and should_reduce_batch_size(exc)


def check_simulated_limit(samples: int, limit: int | None) -> None:
    """``backend.simulate_oom_above``: fail a forward pass over more than ``limit`` samples."""
    if limit is not None and samples > limit:
        raise SimulatedOutOfMemory(
            f"simulated out of memory: a micro-batch of {samples} samples exceeds "
            f"backend.simulate_oom_above={limit}"
        )


def free_memory() -> None:
    """Give cached blocks back after an OOM so the smaller retry starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def peak_mem_mb(device: torch.device) -> float:
    """CUDA: the peak of allocated memory; CPU: the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB

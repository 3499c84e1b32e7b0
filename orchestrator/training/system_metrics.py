"""System metrics of a trial, sampled where it runs and reported with its training metrics.

A background thread in the trial process (rank 0's worker for a multi-worker trial) samples
every ``tracking.system_metrics_s`` seconds; each report carries the samples since the
previous one under :data:`SYSTEM_SAMPLES`, and the driver's tracker logs them as MLflow's
``system/...`` metrics (trials never talk to MLflow). Names follow MLflow's own system
metrics monitor, so they appear under a run's *System metrics* tab:

* host: ``cpu_utilization_percentage``, ``system_memory_usage_megabytes``,
  ``system_memory_usage_percentage``;
* the trial's process tree (the process and its children: data-loader workers, a
  ``command`` task's script): ``process_cpu_utilization_percentage`` (100 = one core),
  ``process_rss_megabytes``;
* each GPU the process may use (``CUDA_VISIBLE_DEVICES``), through NVML when
  ``pynvml`` imports and a driver answers: ``gpu_<i>_utilization_percentage``,
  ``gpu_<i>_memory_usage_megabytes``, ``gpu_<i>_memory_usage_percentage``.

Other ranks' processes are not sampled: one report per epoch reaches Tune, rank 0's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from orchestrator.reserved import SYSTEM_SAMPLES

log = logging.getLogger(__name__)


class SystemSampler:
    """Samples this machine, this process tree and its GPUs every ``interval_s`` seconds."""

    def __init__(self, interval_s: float) -> None:
        import psutil

        self.interval_s = interval_s
        self._process = psutil.Process()
        self._samples: list[list[Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gpus = _gpu_handles()
        self._thread = threading.Thread(target=self._run, name="system-metrics", daemon=True)
        self.sample_s = 0.0  # time spent sampling, for the overhead benchmark
        self._cpu_times: dict[int, float] = {}
        self._last = time.monotonic()
        psutil.cpu_percent(None)  # the first host reading starts its interval

    def start(self) -> SystemSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def drain(self) -> list[list[Any]]:
        """The samples taken since the last call, oldest first."""
        with self._lock:
            out, self._samples = self._samples, []
        return out

    def attach(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """``metrics`` with the pending samples added (unchanged when there are none)."""
        samples = self.drain()
        return {**metrics, SYSTEM_SAMPLES: samples} if samples else metrics

    def sample(self) -> dict[str, float]:
        """One reading of every metric (names without the ``system/`` prefix)."""
        import psutil

        start = time.perf_counter()
        memory = psutil.virtual_memory()
        values = {
            "cpu_utilization_percentage": psutil.cpu_percent(None),
            "system_memory_usage_megabytes": memory.used / 1e6,
            "system_memory_usage_percentage": memory.percent,
        }
        values.update(self._process_tree())
        for index, handle in self._gpus:
            values.update(_gpu_reading(index, handle))
        self.sample_s += time.perf_counter() - start
        return values

    def _process_tree(self) -> dict[str, float]:
        import psutil

        now = time.monotonic()
        rss = 0
        cpu: dict[int, float] = {}
        try:
            processes = [self._process, *self._process.children(recursive=True)]
        except psutil.Error:
            processes = [self._process]
        for p in processes:
            try:
                with p.oneshot():
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
                    rss += p.memory_info().rss
            except psutil.Error:
                continue  # a child that ended between listing and reading
        # CPU seconds of the tree since the last reading, per wall second, in percent; a
        # process seen for the first time counts from its start (small, and one reading)
        used = sum(t - self._cpu_times.get(pid, 0.0) for pid, t in cpu.items())
        elapsed = max(now - self._last, 1e-3)
        self._cpu_times, self._last = cpu, now
        return {
            "process_cpu_utilization_percentage": max(used, 0.0) / elapsed * 100,
            "process_rss_megabytes": rss / 1e6,
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                values = self.sample()
            except Exception as exc:  # a metric that cannot be read must not end the trial
                log.debug("system metrics sample failed: %s", exc)
                continue
            with self._lock:
                self._samples.append([int(time.time() * 1000), values])


def _visible_indices(count: int) -> list[int]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    indices = [int(v) for v in visible.split(",") if v.strip().isdigit()]
    return [i for i in indices if i < count]


def _gpu_handles() -> list[tuple[int, Any]]:
    """``(device index as the process sees it, NVML handle)`` of each usable GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        return [
            (local, pynvml.nvmlDeviceGetHandleByIndex(physical))
            for local, physical in enumerate(_visible_indices(count))
        ]
    except Exception:  # no pynvml, no driver, no GPU: host metrics only
        return []


def _gpu_reading(index: int, handle: Any) -> dict[str, float]:
    import pynvml

    try:
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        busy = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
    except Exception:
        return {}
    return {
        f"gpu_{index}_utilization_percentage": float(busy),
        f"gpu_{index}_memory_usage_megabytes": memory.used / 1e6,
        f"gpu_{index}_memory_usage_percentage": 100.0 * memory.used / max(memory.total, 1),
    }

"""System metrics sampled in a trial and logged as MLflow ``system/...`` metrics."""

from __future__ import annotations

import time

import psutil
import pytest
from mlflow import MlflowClient

from orchestrator.reserved import SYSTEM_SAMPLES
from orchestrator.tracking.mlflow_tracker import SweepTracker
from orchestrator.training.system_metrics import SystemSampler, _visible_indices


def test_samples_are_taken_every_interval_and_drained_once():
    sampler = SystemSampler(0.05).start()
    time.sleep(0.6)
    sampler.stop()
    samples = sampler.drain()
    assert len(samples) >= 3, samples
    assert sampler.drain() == []
    times = [t for t, _ in samples]
    assert times == sorted(times)
    _, values = samples[-1]
    assert {
        "cpu_utilization_percentage",
        "system_memory_usage_megabytes",
        "system_memory_usage_percentage",
        "process_cpu_utilization_percentage",
        "process_rss_megabytes",
    } <= set(values)
    total_mb = psutil.virtual_memory().total / 1e6
    assert 0 < values["system_memory_usage_megabytes"] < total_mb
    # this process alone holds more than its interpreter's 10 MB
    assert 10 < values["process_rss_megabytes"] < total_mb


def test_process_cpu_is_cpu_seconds_of_the_tree_per_wall_second():
    sampler = SystemSampler(60)  # not started: readings by hand
    sampler.sample()
    before, wall = psutil.Process().cpu_times(), time.monotonic()
    end = time.process_time() + 0.3
    while time.process_time() < end:  # 0.3 s of CPU in this process
        pass
    values = sampler.sample()
    after, elapsed = psutil.Process().cpu_times(), time.monotonic() - wall
    used = (after.user + after.system) - (before.user + before.system)
    # psutil reads /proc in clock ticks (10 ms), process_time() exactly: two readings can
    # each lose up to a tick (seen: 0.2899... for 0.3 s spent)
    assert used >= 0.28
    assert values["process_cpu_utilization_percentage"] == pytest.approx(
        used / elapsed * 100, rel=0.15
    )


def test_attach_adds_pending_samples_only():
    sampler = SystemSampler(60)
    assert sampler.attach({"val/map": 0.5}) == {"val/map": 0.5}
    sampler._samples.append([1000, {"cpu_utilization_percentage": 12.0}])
    assert sampler.attach({"val/map": 0.5}) == {
        "val/map": 0.5,
        SYSTEM_SAMPLES: [[1000, {"cpu_utilization_percentage": 12.0}]],
    }


@pytest.mark.parametrize(
    ("visible", "count", "expected"),
    [(None, 2, [0, 1]), ("1", 2, [1]), ("3,0", 2, [0]), ("GPU-uuid", 2, [])],
)
def test_gpus_sampled_are_the_visible_ones(monkeypatch, visible, count, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert _visible_indices(count) == expected


def test_samples_become_system_metrics_one_step_each_apart_from_training_steps(tmp_path, store):
    uri = store
    tracker = SweepTracker(uri, "exp", "s", tmp_path / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({}, {})
    tracker.start_trial("t1", "trial-1", {})
    first = [
        [1_000, {"cpu_utilization_percentage": 10.0}],
        [2_000, {"cpu_utilization_percentage": 20.0}],
    ]
    second = [[3_000, {"cpu_utilization_percentage": 30.0, "gpu_0_utilization_percentage": 99.0}]]
    tracker.log_result("t1", {"train/loss": 1.0, SYSTEM_SAMPLES: first}, 4)
    tracker.log_result("t1", {"train/loss": 0.5, SYSTEM_SAMPLES: second}, 8)
    assert tracker.journal.last_step["trial:t1"] == 8  # sample counters are not steps
    assert tracker.flush(300)
    client = MlflowClient(uri)
    run_id = tracker.trial_runs["t1"]
    cpu = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert [(m.step, m.value, m.timestamp) for m in cpu] == [
        (0, 10.0, 1_000),
        (1, 20.0, 2_000),
        (2, 30.0, 3_000),
    ]
    gpu = client.get_metric_history(run_id, "system/gpu_0_utilization_percentage")
    assert [(m.step, m.value) for m in gpu] == [(2, 99.0)]
    tracker.close()


class _FakeNVML:
    """Stands in for ``pynvml`` (no GPU here): two physical devices with fixed readings."""

    class Memory:
        def __init__(self, used: int, total: int) -> None:
            self.used, self.total = used, total

    class Rates:
        def __init__(self, gpu: int) -> None:
            self.gpu = gpu

    def __init__(self) -> None:
        memory, rates = self.Memory, self.Rates
        self.readings = {0: (memory(1_000_000_000, 4_000_000_000), rates(10)),
                         1: (memory(3_000_000_000, 4_000_000_000), rates(75))}  # fmt: skip

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, physical: int) -> int:
        return physical

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Memory:
        return self.readings[handle][0]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Rates:
        return self.readings[handle][1]


def test_gpu_readings_are_named_by_the_processs_own_device_index(monkeypatch):
    """With CUDA_VISIBLE_DEVICES=1 the process's GPU 0 is physical device 1: its metrics
    are gpu_0_*, read from device 1 (75% busy, 3,000 of 4,000 MB: 75%)."""
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", _FakeNVML())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    values = SystemSampler(60).sample()
    gpu = {k: v for k, v in values.items() if k.startswith("gpu_")}
    assert gpu == {
        "gpu_0_utilization_percentage": 75.0,
        "gpu_0_memory_usage_megabytes": 3000.0,
        "gpu_0_memory_usage_percentage": 75.0,
    }
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    both = SystemSampler(60).sample()
    assert both["gpu_0_utilization_percentage"] == 10.0
    assert both["gpu_1_memory_usage_megabytes"] == 3000.0
    assert both["gpu_0_memory_usage_percentage"] == 25.0

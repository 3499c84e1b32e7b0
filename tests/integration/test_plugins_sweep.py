"""A toy scheduler and a toy sampler, registered from this module only, drive a real Ray Tune
sweep of the regression task (docs/extending.md)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import optuna
import pytest
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from orchestrator.config import load_sweep
from orchestrator.config.models import SAMPLERS, SCHEDULERS, SamplerConfig, SchedulerConfig

# the sweeps run in the test's own process, on a local Ray as before: a process that had
# a local Ray (another in-process test) could not join a second cluster reliably
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


class StopAtOnce(FIFOScheduler):
    """The toy scheduler's Ray side (module level: Tune pickles its scheduler)."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: Any) -> str:
        return TrialScheduler.STOP


class FirstReportOnly(SchedulerConfig):
    """Stops every trial at its first report."""

    kind: Literal["first_report"] = "first_report"

    def build(self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True) -> Any:
        return StopAtOnce()


class Lowest(optuna.samplers.RandomSampler):
    """The toy sampler's Optuna side (module level: Ray pickles the searcher)."""

    def sample_independent(self, study, trial, name, distribution):  # type: ignore[no-untyped-def]
        return distribution.low


class LowestValues(SamplerConfig):
    """Proposes the low end of every range."""

    kind: Literal["lowest"] = "lowest"

    def build(self, *, concurrent: bool, space: dict[str, Any]) -> Any:
        return Lowest(seed=self.seed)


@pytest.fixture
def plugins() -> Iterator[None]:
    SCHEDULERS.register(FirstReportOnly)
    SAMPLERS.register(LowestValues)
    yield
    SCHEDULERS.remove("first_report")
    SAMPLERS.remove("lowest")


SWEEP = """\
name: plugins
task: {kind: regression, num_train: 32, num_val: 16}
optim: {name: sgd, lr: 0.01}
batch: {effective: 16, micro: 16}
train: {epochs: 3, grad_clip: null}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [0.002, 0.02], log: true}
sweep: {num_samples: 2, max_concurrent: 1, sampler: {kind: lowest}, dir: DIR}
stopping: {scheduler: {kind: first_report}}
tracking: {enabled: false}
"""


def test_registered_scheduler_and_sampler_drive_a_real_sweep(tmp_path: Path, plugins) -> None:
    from orchestrator.tuning.runner import run_sweep

    path = tmp_path / "s.yaml"
    # the same sweep shows sweep.ray_dashboard (off by default): a local Ray with its
    # dashboard, whose address the sweep prints and which answers while Ray is up
    path.write_text(
        SWEEP.replace("DIR", str(tmp_path / "sweeps")).replace("dir:", "ray_dashboard: true, dir:")
    )
    config = load_sweep(path)
    out = io.StringIO()
    try:
        summary = run_sweep(config, str(path), out=out)
        (line,) = [x for x in out.getvalue().splitlines() if x.startswith("Ray dashboard: ")]
        url = line.removeprefix("Ray dashboard: ")
        assert url.startswith("http://127.0.0.1:"), line
        # Ray's token auth (its default) guards it; the token as the docs tell users to
        # get it (docs/sweep-file.md)
        token = subprocess.run(
            [str(Path(sys.executable).parent / "ray"), "get-auth-token"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        request = urllib.request.Request(
            f"{url}/api/version", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200 and "ray_version" in json.loads(answer.read())
    finally:
        import ray

        ray.shutdown()  # the sweep ran in this process: later tests start their own Ray
    assert len(summary.trials) == 2
    for row in summary.trials:
        assert row.params["optim.lr"] == pytest.approx(0.002)  # the sampler's choice
        assert row.epochs == 1  # the scheduler stopped it at its first of 3 reports

"""Every sampler kind runs a real sweep (regression task, Ray, Optuna, MLflow), sharing one
Ray cluster: ``start_from`` points run first with exactly their values (read back from
MLflow), and a sweep warm-started from the first one holds its trials in its study."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from orchestrator.config.models import SAMPLERS

# the sweeps run in the test's own process, on a local Ray as before: a process that had
# a local Ray (another in-process test) could not join a second cluster reliably
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

SWEEP = """\
name: s-{kind}
task: {{kind: regression, num_train: 32, num_val: 16}}
batch: {{effective: 16, micro: 16}}
train: {{epochs: 1, grad_clip: null}}
objective: {{metric: val/mse, mode: min}}
space:
  optim.lr: {{float: [0.01, 0.05], step: 0.01}}
  loss.weight.mse: {{float: [0.5, 2.0], step: 0.5}}
sweep:
  num_samples: 3
  max_concurrent: 1
  num_cpus: 2
  sampler: {{kind: {kind}{extra}}}
  start_from:
    - {{optim.lr: 0.03, loss.weight.mse: 1.5}}
    - {{optim.lr: 0.05}}
stopping: {{scheduler: {{kind: none}}}}
tracking: {{experiment: samplers}}
"""

EXTRA = {"nsga2": ", population_size: 2", "nsga3": ", population_size: 2"}


def test_every_sampler_runs_start_points_first_and_warm_starts(tmp_path):
    import ray
    from mlflow import MlflowClient

    from orchestrator.config import load_sweep
    from orchestrator.tuning.runner import run_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [f"sweep.dir={tmp_path / 'sweeps'}", f"tracking.uri={uri}"]
    client = MlflowClient(tracking_uri=uri)
    summaries = {}
    _start_ray()
    try:
        for kind in [*SAMPLERS.names(), "warm"]:
            text = SWEEP.format(kind="tpe" if kind == "warm" else kind, extra=EXTRA.get(kind, ""))
            path = tmp_path / f"{kind}.yaml"
            if kind == "warm":
                text = text.replace("name: s-tpe", "name: s-warm")
            path.write_text(text)
            extra = []
            if kind == "warm":
                extra = [f"sweep.warm_start={{sweep_dir: {summaries['tpe'].sweep_dir}}}"]
            if kind == "grid":  # a grid start point names a whole grid point
                extra = [
                    "sweep.start_from=[{optim.lr: 0.03, loss.weight.mse: 1.5}, "
                    "{optim.lr: 0.05, loss.weight.mse: 0.5}]"
                ]
            summaries[kind] = run_sweep(
                load_sweep(path, overrides + extra), str(path), out=io.StringIO()
            )
    finally:
        ray.shutdown()

    for kind, summary in summaries.items():
        rows = {r.trial: r for r in summary.trials}
        assert len(rows) == 3 and all(r.status == "done" for r in rows.values()), kind
        first, second = rows["trial-1"], rows["trial-2"]
        assert first.params["optim.lr"] == 0.03 and first.params["loss.weight.mse"] == 1.5
        assert second.params["optim.lr"] == 0.05
        assert second.params["loss.weight.mse"] in (0.5, 1.0, 1.5, 2.0)  # sampled
        run = client.get_run(first.run_id)
        assert run.data.params["optim.lr"] == "0.03", kind
        assert run.data.params["loss.weight.mse"] == "1.5", kind
        assert client.get_run(second.run_id).data.params["optim.lr"] == "0.05", kind

    # the warm-started sweep's searcher (saved by Tune with the experiment) holds the 3
    # trials of the tpe sweep, marked, before its own 3
    warm_dir = summaries["warm"].sweep_dir
    (state,) = sorted(Path(warm_dir).glob("ray/tune/search*.pkl"))
    saved = pickle.loads(state.read_bytes())
    study = _find_study(saved)
    trials = study.trials
    earlier = [t for t in trials if t.user_attrs.get("orch.warm_start")]
    assert len(earlier) == 3 and len(trials) == 6
    tpe_params = sorted(
        (r.params["optim.lr"], r.params["loss.weight.mse"]) for r in summaries["tpe"].trials
    )
    assert sorted((t.params["optim.lr"], t.params["loss.weight.mse"]) for t in earlier) == (
        tpe_params
    )
    assert all(t.constraints == {"orch.diverged": 0.0} for t in trials)


def _start_ray() -> None:
    """One local Ray for every sweep. Ray gives its node 30 s to register (hard-coded); on a
    busy machine that can run out, so up to three attempts."""
    import logging

    import ray

    for attempt in range(3):
        try:
            ray.init(
                address="local", num_cpus=2, log_to_driver=False, logging_level=logging.WARNING
            )
            return
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise


def _find_study(saved: object) -> object:
    """The Optuna study inside Tune's pickled searcher state (ConcurrencyLimiter ->
    SweepSearch)."""
    import optuna

    stack = [saved]
    while stack:
        item = stack.pop()
        if isinstance(item, optuna.Study):
            return item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    raise AssertionError("no Optuna study in the searcher state")

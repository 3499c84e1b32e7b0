"""Overhead of the orchestrator's tuning layer vs wiring Ray Tune + Optuna by hand.

Run: python bench/overhead.py [--trials 8] [--epochs 5]

Part 1 runs the same tiny regression training three ways on one local Ray cluster, side
by side: a plain ``ray.tune`` function trainable with ``OptunaSearch`` (a hand-written torch
loop), the orchestrator without MLflow, and the orchestrator with MLflow (SQLite store). It
prints wall time per trial and the ratios to the plain run (Tune's default, a fresh process
per trial); a second plain row reuses Tune's trial processes (``reuse_actors=True``), as the
orchestrator does by default (``sweep.reuse_processes``), so the two can be told apart.

Part 2 measures the time from a trial's start to its first report (seen by the Tune driver)
for 1 and 2 workers: the orchestrator against plain Ray Train-in-Tune (a ``TorchTrainer``
inside a Tune function trainable, the pattern Ray Train V2 supports), both doing the same work
before their first report: build the data and the model, wrap it in DDP, train one epoch of
two and evaluate (ours also writes its epoch checkpoint). ``--train-in-tune-bare`` adds the
row this bench printed before: plain workers that report at once without training, a lower
bound no training job reaches.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from orchestrator.config.loader import load_sweep
from orchestrator.tuning.runner import run_sweep

SWEEP = """\
name: bench
task: {{kind: regression, num_train: 256, num_val: 64}}
optim: {{name: adamw, lr: 0.01}}
batch: {{effective: 32, micro: {micro}}}
train: {{epochs: {epochs}, grad_clip: null}}
objective: {{metric: val/mse, mode: min}}
space:
  optim.lr: {{float: [1.0e-3, 1.0e-1], log: true}}
  loss.weight.l1: {{float: [0.0, 1.0]}}
resources: {{workers: {workers}}}
sweep: {{num_samples: {trials}, max_concurrent: {concurrent}, dir: {dir}}}
stopping: {{scheduler: {{kind: none}}}}
tracking: {{enabled: {tracking}, uri: "sqlite:///{dir}/mlflow.db"}}
"""


SETUPS = (
    "plain ray.tune + OptunaSearch",
    "  same, reuse_actors=True",
    "orchestrator, no MLflow",
    "orchestrator + MLflow (sqlite)",
)


class FirstReport(tune.Callback):  # type: ignore[misc]
    """Driver-side seconds from a trial's start to its first result."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.latency: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_result(
        self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
    ) -> None:
        if trial.trial_id not in self.latency:
            self.latency[trial.trial_id] = time.perf_counter() - self.started[trial.trial_id]


def _data_and_model() -> tuple[tuple[torch.Tensor, ...], torch.nn.Module]:
    """The regression task's data (train x, y, val x, y) and MLP, by hand."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 1, generator=g)
    x = torch.randn(320, 8, generator=g)
    y = x @ w + 0.1 * torch.randn(320, 1, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return (x[:256], y[:256], x[256:], y[256:]), model


def _plain_trainable(config: dict[str, Any]) -> None:
    """The same MLP, data and loss as the orchestrator's regression task, by hand."""
    epochs = config["epochs"]
    (xt, yt, xv, yv), model = _data_and_model()
    opt = torch.optim.AdamW(model.parameters(), lr=config["optim.lr"], weight_decay=1e-4)
    for _ in range(epochs):
        perm = torch.randperm(256)
        for i in range(0, 256, 32):
            idx = perm[i : i + 32]
            err = model(xt[idx]) - yt[idx]
            loss = (err**2).mean() + config["loss.weight.l1"] * err.abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            tune.report({"val/mse": float(((model(xv) - yv) ** 2).mean())})


def _plain(
    trials: int, epochs: int, concurrent: int, storage: str, reuse: bool = False
) -> tuple[float, FirstReport]:
    timer = FirstReport()
    space = {
        "optim.lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True),
        "loss.weight.l1": optuna.distributions.FloatDistribution(0.0, 1.0),
    }
    search = OptunaSearch(
        space, metric="val/mse", mode="min", sampler=optuna.samplers.TPESampler(seed=0)
    )
    tuner = tune.Tuner(
        tune.with_parameters(lambda c: _plain_trainable({**c, "epochs": epochs})),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(search, max_concurrent=concurrent),
            num_samples=trials,
            reuse_actors=reuse,
        ),
        run_config=tune.RunConfig(storage_path=storage, callbacks=[timer], verbose=0),
    )
    started = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - started, timer


def _orchestrator(
    trials: int, epochs: int, concurrent: int, workers: int, tracking: bool, root: Path
) -> tuple[float, FirstReport]:
    path = root / f"bench-{workers}-{tracking}-{time.monotonic_ns()}.yaml"
    path.write_text(
        SWEEP.format(
            epochs=epochs,
            trials=trials,
            concurrent=concurrent,
            workers=workers,
            micro=32 // workers,
            tracking=str(tracking).lower(),
            dir=root,
        )
    )
    config = load_sweep(path)
    timer = FirstReport()
    started = time.perf_counter()
    run_sweep(config, out=io.StringIO(), callbacks=[timer])
    return time.perf_counter() - started, timer


def _ddp_loop(config: dict[str, Any]) -> None:
    """The regression training of ``_plain_trainable`` as a hand-written Ray Train worker
    loop: each rank trains on its shard of every batch under DDP, rank 0's metrics win."""
    from ray.train.torch import prepare_model

    if config["bare"]:  # the lower bound: report before any training
        ray.train.report({"val/mse": 1.0})
        return
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    (xt, yt, xv, yv), mlp = _data_and_model()
    model = prepare_model(mlp)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=1e-4)
    micro = 32 // world
    for _ in range(config["epochs"]):
        perm = torch.randperm(256, generator=torch.Generator().manual_seed(1))
        for i in range(0, 256, 32):
            idx = perm[i + rank * micro : i + (rank + 1) * micro]
            err = model(xt[idx]) - yt[idx]
            loss = (err**2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            ray.train.report({"val/mse": float(((model(xv) - yv) ** 2).mean())})


def _train_in_tune(
    workers: int, trials: int, storage: str, epochs: int, bare: bool = False
) -> FirstReport:
    """Plain Ray Train V2 inside Tune: a TorchTrainer per trial (``_ddp_loop``)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def trainable(config: dict[str, Any]) -> None:
        TorchTrainer(
            _ddp_loop,
            train_loop_config={"epochs": epochs, "bare": bare},
            scaling_config=ScalingConfig(num_workers=workers),
            run_config=RunConfig(
                storage_path=storage,
                callbacks=[TuneReportCallback()],
                name=f"plain-{tune.get_context().get_trial_id()}",
            ),
        ).fit()

    timer = FirstReport()
    tune.Tuner(
        tune.with_resources(trainable, {"cpu": 0.1}),
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=storage, callbacks=[timer], verbose=0),
    ).fit()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--train-in-tune-bare",
        action="store_true",
        help="part 2 also times plain workers that report at once, without training",
    )
    args = parser.parse_args()
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # no experiment banners between the tables
    ray.init(num_cpus=4, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        storage = str(root / "ray")
        n, e, c = args.trials, args.epochs, args.concurrent
        # warm-up: worker processes and their imports (torch, accelerate) for every setup
        _plain(2, 1, 1, storage)
        _orchestrator(2, 1, 1, 1, True, root)
        walls: dict[str, list[float]] = {name: [] for name in SETUPS}
        for _ in range(args.rounds):  # interleaved, so drift on the machine hits all alike
            walls[SETUPS[0]].append(_plain(n, e, c, storage)[0])
            walls[SETUPS[1]].append(_plain(n, e, c, storage, reuse=True)[0])
            walls[SETUPS[2]].append(_orchestrator(n, e, c, 1, False, root)[0])
            walls[SETUPS[3]].append(_orchestrator(n, e, c, 1, True, root)[0])
        base = statistics.median(walls[SETUPS[0]])
        print(
            f"\nPart 1: {n} trials x {e} epochs, {c} concurrent, same regression training; "
            f"median of {args.rounds} interleaved rounds"
        )
        print(f"{'setup':<34}{'s/trial':>10}{'ratio':>8}")
        for name in SETUPS:
            wall = statistics.median(walls[name])
            print(f"{name:<34}{wall / n:>10.3f}{wall / base:>8.2f}")

        print(
            "\nPart 2: seconds from trial start to first report, the same training "
            f"(median of {args.rounds} rounds x 2 trials, interleaved)"
        )
        header = f"{'workers':<9}{'orchestrator':>14}{'plain Train-in-Tune':>22}{'ratio':>8}"
        print(header + ("  bare Train-in-Tune  ratio" if args.train_in_tune_bare else ""))
        for workers in (1, 2):
            ours: list[float] = []
            theirs: list[float] = []
            bare: list[float] = []
            for _ in range(args.rounds):
                # two epochs: the first report is then an epoch's, not the trial's last,
                # which also waits for the final weights (end-of-trial work)
                ours += _orchestrator(2, 2, 1, workers, False, root)[1].latency.values()
                theirs += _train_in_tune(workers, 2, storage, 2).latency.values()
                if args.train_in_tune_bare:
                    bare += _train_in_tune(workers, 2, storage, 2, bare=True).latency.values()
            a, b = statistics.median(ours), statistics.median(theirs)
            line = f"{workers:<9}{a:>14.2f}{b:>22.2f}{a / b:>8.2f}"
            if bare:
                c = statistics.median(bare)
                line += f"{c:>20.2f}{a / c:>7.2f}"
            print(line)
    ray.shutdown()


if __name__ == "__main__":
    main()

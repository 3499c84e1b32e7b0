"""The trial loop's training throughput vs a plain PyTorch loop, and 2 workers vs 1.

Run: python bench/train_step.py [--rounds 3] [--samples 192]

Part 1: the same tiny randomly initialised RT-DETR, the same generated data, the same
micro-batch (8) and optimizer (AdamW, clip 0.1), trained for one epoch two ways, interleaved
``--rounds`` times: ``run_trial`` (Accelerate, the micro-batch sampler, accumulation, NaN
checks, divergence bookkeeping; its ``train/samples_per_s`` times the training part only) and
a hand-written loop (DataLoader + forward + criterion + backward + clip + step). Printed:
median samples/s of each and their ratio (target >= 0.95).

Part 2: ``run_trial`` with 2 DDP workers (gloo, two processes) vs 1, same effective batch 16:
the cost of DDP on this machine (2 CPU cores: the two workers share them).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from orchestrator.config import load_sweep  # noqa: E402
from orchestrator.search_space.space import SearchSpace  # noqa: E402
from orchestrator.tasks import get_task  # noqa: E402
from orchestrator.training.loop import run_trial  # noqa: E402
from orchestrator.training.spec import TrialSpec, resolve  # noqa: E402

SWEEP = """\
name: bench
task:
  kind: rtdetr
  model: {{preset: tiny, num_queries: 50}}
  data: {{kind: synthetic, num_train: {samples}, num_val: 8, image_size: 128, num_classes: 3,
         max_objects: 4, seed: 0}}
loss: {{cls: vfl}}
optim: {{name: adamw, lr: 2.0e-4, weight_decay: 1.0e-4}}
batch: {{effective: {effective}, micro: 8}}
train: {{epochs: 1, grad_clip: 0.1, seed: 0}}
resources: {{workers: {workers}}}
objective: {{metric: val/map, mode: max}}
stopping: {{divergence: {{}}}}
"""


def _spec(root: Path, samples: int, workers: int, effective: int) -> TrialSpec:
    path = root / f"bench-{workers}.yaml"
    path.write_text(SWEEP.format(samples=samples, workers=workers, effective=effective))
    config = load_sweep(path)
    params = SearchSpace(config).derived({})
    get_task("rtdetr").prepare_data()(config.task, root / "data")
    return TrialSpec(config.model_dump(by_alias=True, mode="json"), params, str(root / "data"))


def ours(spec: TrialSpec) -> float:
    reports: list[dict[str, Any]] = []
    run_trial(spec, reports.append)
    return float(reports[0]["train/samples_per_s"])


def plain(spec: TrialSpec) -> float:
    """What a user would write by hand with the same task code."""
    trial = resolve(spec)
    torch.manual_seed(0)
    entry = get_task("rtdetr")
    task = entry.task_class()(trial.config.task, trial.loss, seed=0, data_root=trial.data_root)
    train_set, _ = task.datasets()
    loader = DataLoader(
        train_set, batch_size=8, shuffle=True, drop_last=True, collate_fn=task.collate
    )
    model = task.build_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    samples = 0
    started = time.perf_counter()
    for batch in loader:
        out = task.loss(model, batch)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        optimizer.zero_grad()
        samples += 8
    return samples / (time.perf_counter() - started)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, spec: TrialSpec, out: Any) -> None:
    import torch.distributed as dist

    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": "2",
        }
    )
    torch.set_num_threads(1)  # two processes on two cores
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        reports: list[dict[str, Any]] = []
        run_trial(spec, reports.append)
        if rank == 0:
            out.put(float(reports[0]["train/samples_per_s"]))
    finally:
        dist.destroy_process_group()


def two_workers(spec: TrialSpec) -> float:
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    torch.multiprocessing.spawn(_worker, args=(_free_port(), spec, queue), nprocs=2, join=True)
    return float(queue.get())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=192)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = _spec(root, args.samples, 1, 8)
        ours(one)  # warm-up: imports, allocator, first-touch of the data
        plain(one)
        a, b = [], []
        for _ in range(args.rounds):
            a.append(ours(one))
            b.append(plain(one))
        ra, rb = statistics.median(a), statistics.median(b)
        print(
            f"Part 1: tiny RT-DETR, micro-batch 8, {args.samples} samples per epoch, "
            f"{args.rounds} interleaved rounds (torch threads: {torch.get_num_threads()})"
        )
        print(f"  run_trial (Accelerate loop)  {ra:7.1f} samples/s  {[round(x, 1) for x in a]}")
        print(f"  plain PyTorch loop           {rb:7.1f} samples/s  {[round(x, 1) for x in b]}")
        print(f"  ratio ours/plain = {ra / rb:.3f}  (target >= 0.95)")

        single = _spec(root, args.samples, 1, 16)
        double = _spec(root, args.samples, 2, 16)
        s1 = [ours(single) for _ in range(args.rounds)]
        s2 = [two_workers(double) for _ in range(args.rounds)]
        m1, m2 = statistics.median(s1), statistics.median(s2)
        print(
            "Part 2: effective batch 16, micro 8: 1 worker (accumulation 2) vs 2 DDP "
            "workers (gloo, 1 thread each, accumulation 1)"
        )
        print(f"  1 worker   {m1:7.1f} samples/s  {[round(x, 1) for x in s1]}")
        print(f"  2 workers  {m2:7.1f} samples/s  {[round(x, 1) for x in s2]}")
        print(f"  speed-up 2 vs 1 = {m2 / m1:.2f}x" + ("" if math.isfinite(m2) else " (failed)"))


if __name__ == "__main__":
    main()

"""Training in several processes at once: two DDP / DeepSpeed ZeRO ranks (gloo on
127.0.0.1) against one process, loss-weight calibration over a real all-reduce, and three
sweeps racing to create one fresh SQLite MLflow store.

Moved out of tests/unit (issue 20): each spawns processes that import torch, Accelerate
and DeepSpeed, 10-40 s apiece on 2 cores; the fast single-process checks of the same code
stay in tests/unit/test_batch.py, test_loss_weighting.py and test_store_init.py.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient

from orchestrator.tasks.base import LossConfig
from orchestrator.training.weighting import LossWeighting
from tests.unit.test_batch import run, sweep
from tests.unit.test_loss_weighting import DATA, _OneProcess, _SumTask

pytestmark = pytest.mark.integration


# --- the equivalence test: 2 workers x micro 4 x accum 2 == 1 worker x micro 16 ----------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, path: str, out: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch.distributed as dist

    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world),
        }
    )
    # the process group exists before Accelerate starts, as under Ray Train
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        run(Path(path), Path(out))
    finally:
        dist.destroy_process_group()


BACKENDS = {
    "ddp": "",
    "zero2": "backend: {kind: deepspeed, zero_stage: 2}\n",
    "zero3": "backend: {kind: deepspeed, zero_stage: 3}\n",
}


@pytest.mark.parametrize(
    ("reduction", "backend"),
    [("mean", "ddp"), ("sum", "ddp"), ("mean", "zero2"), ("sum", "zero3")],
)
def test_two_workers_with_accumulation_equal_one_worker_one_pass(
    tmp_path: Path, reduction: str, backend: str
) -> None:
    # one epoch of 64 samples = 4 optimizer steps of 16, plain SGD (no momentum, no clip):
    # identical parameters prove accumulation and DDP average (mean) or sum (sum) exactly
    # as one pass over the effective batch does
    single = sweep(tmp_path, micro=16, workers=1, reduction=reduction)
    run(single, tmp_path / "single")
    if backend != "ddp":
        pytest.importorskip("deepspeed", reason="pip install -e .[deepspeed]")
    split = sweep(tmp_path, micro=4, workers=2, reduction=reduction, extra=BACKENDS[backend])
    torch.multiprocessing.spawn(
        _ddp_worker,
        args=(2, _free_port(), str(split), str(tmp_path / "split")),
        nprocs=2,
        join=True,
    )
    a = torch.load(tmp_path / "single" / "model.pt")
    b = torch.load(tmp_path / "split" / "model.pt")
    assert json.loads((tmp_path / "split" / "batch_plan.json").read_text())["accum"] == 2
    changed = 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
        changed += int(not math.isclose(float(a[k].abs().sum()), 0.0))
    assert changed  # the weights moved: the comparison is not between two untrained models


# --- loss-weight calibration over a real all-reduce ---------------------------------


class _Gloo:
    """What calibrate needs of an Accelerator, over a real gloo process group."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.process_index = torch.distributed.get_rank()
        self.num_processes = torch.distributed.get_world_size()

    def reduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        assert op == "sum"
        torch.distributed.all_reduce(tensor)
        return tensor


def _calibrate_on_rank(rank: int, port: int, results: Any) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        config = LossConfig(
            weighting="target_share", share={"a": 1, "b": 1}, calibration_batches=2
        )
        weighting = LossWeighting(config, ("a", "b"))
        model = torch.nn.BatchNorm1d(1)
        results[rank] = weighting.calibrate(_SumTask(), model, DATA, 2, _Gloo(), seed=3)
    finally:
        torch.distributed.destroy_process_group()


def test_calibrate_all_reduces_so_every_ddp_rank_gets_the_same_weights() -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.get_context("spawn").Manager()
    results = manager.dict()
    # 2 ranks x 2 micro-batches x 2 samples deal out all 8 samples once, each rank's half
    # differs, yet both must see the global mean |a| = 36 / 4 = 9
    mp.spawn(_calibrate_on_rank, args=(port, results), nprocs=2, join=True)
    expected = {"a": pytest.approx(6 / 9), "b": pytest.approx(2.0)}
    assert results[0] == expected and results[1] == expected
    # the test can fail: each rank's own half alone gives other weights
    config = LossConfig(weighting="target_share", share={"a": 1, "b": 1}, calibration_batches=2)
    alone = [
        LossWeighting(config, ("a", "b")).calibrate(
            _SumTask(),
            torch.nn.BatchNorm1d(1),
            DATA,
            2,
            _OneProcess(process_index=r, num_processes=2),
            seed=3,
        )["a"]
        for r in (0, 1)
    ]
    assert alone[0] != pytest.approx(6 / 9) and alone[1] != pytest.approx(6 / 9)


# --- three sweeps, one fresh SQLite store (issue 19, part 4) ---------------------------


#: one sweep's tracking start: a journal with its experiment and parent run, applied
_SWEEP = textwrap.dedent(
    """
    import sys, time
    from orchestrator.tracking.journal import Journal
    from orchestrator.tracking.writer import JournalWriter
    uri, root, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    journal = Journal(root, fsync=False)
    journal.append({"op": "experiment", "name": "race"})
    journal.append({"op": "create_run", "key": "sweep", "name": root})
    writer = JournalWriter(journal, uri)
    while time.time() < start:
        time.sleep(0.001)
    ok = writer.drain(600)  # generous: the store is made under a lock, one at a time
    print("drained" if ok else f"pending: {writer.last_error}")
    """
)


def test_sweeps_starting_together_create_a_fresh_sqlite_store_once(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    # the same instant in every process, after their (slow) imports
    start = time.time() + 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SWEEP, uri, str(tmp_path / f"s{n}" / "tracking"), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(3)
    ]
    results = [proc.communicate(timeout=900) for proc in procs]
    for out, err in results:
        assert out.strip() == "drained", err
        assert "unreachable" not in err
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("race")
    assert len(client.search_runs([exp.experiment_id])) == 3

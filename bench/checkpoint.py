"""What a trial checkpoint costs, as a share of an epoch, measured in-process (no Ray).

Run: python bench/checkpoint.py [--tasks rtdetr detector regression] [--epochs 3] [--repeats 3]
     [--num-train N]

For each task, one trial of its shipped sweep file (``search_spaces/rtdetr.yaml``,
``faster_rcnn.yaml``; the regression task's defaults) runs through the built-in trial loop
with a stand-in for ``tune.report``, checkpointing every epoch as a sweep does by default.
It times the loop's own functions: each epoch (training + evaluation, the epoch a report
stands for), each checkpoint's capture and ``torch.save`` (``training/checkpoint.py``), and
then ``--repeats`` restores of the last checkpoint (``checkpoint.load`` + ``apply`` into a
trial built afresh, as a retried trial does). Prints medians side by side with the epoch
time and the share of it (target: below 3%). The data set is the file's own (320 and 256
synthetic images), or ``--num-train`` images for a quicker run: the checkpoint costs the
same, the epoch is shorter, so the share grows as the data set shrinks (a real data set's
epoch is far longer than these). Tune's copy of the folder into the sweep's storage is not
included (a file copy of the size printed). docs/performance.md quotes its output.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the sweep file each task is measured with; None = the task's defaults
FILES: dict[str, str | None] = {
    "rtdetr": "search_spaces/rtdetr.yaml",
    "detector": "search_spaces/faster_rcnn.yaml",
    "regression": None,
}
REGRESSION = """\
name: bench-ckpt
task: {kind: regression}
objective: {metric: val/mse, mode: min}
"""


class Timings:
    """Wall seconds of each call of the wrapped functions, by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label].append(time.perf_counter() - started)

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def _spec(task: str, root: Path, epochs: int, num_train: int | None) -> Any:
    from orchestrator.config.loader import load_sweep
    from orchestrator.search_space.space import SearchSpace
    from orchestrator.tasks import get_task
    from orchestrator.training.spec import TrialSpec

    overrides = [
        f"train.epochs={epochs}",
        "train.checkpoint={every: 1, keep: 2}",
        f"sweep.dir={root}",
        "tracking.enabled=false",
    ]
    if FILES[task] is None:
        path = root / "regression.yaml"
        path.write_text(REGRESSION)
    else:
        path = ROOT / str(FILES[task])
        if num_train:
            overrides += [
                f"task.data.num_train={num_train}",
                f"task.data.num_val={num_train // 4}",
            ]
    config = load_sweep(path, overrides)
    data_root = root / "data"
    get_task(config.task.kind).prepare_data()(config.task, data_root)
    return TrialSpec(
        sweep=config.model_dump(by_alias=True, mode="json"),
        params=SearchSpace(config).derived({}),
        data_root=str(data_root),
        output_dir=str(root / "model"),
        memory_cache=str(root / "memory.json"),
    )


def measure(task: str, epochs: int, repeats: int, num_train: int | None) -> dict[str, float]:
    """Median seconds of an epoch, a checkpoint's save and restore, and its size in MB."""
    from orchestrator.training import checkpoint, loop

    with tempfile.TemporaryDirectory(prefix=f"bench-ckpt-{task}-") as tmp:
        root = Path(tmp)
        spec = _spec(task, root, epochs, num_train)
        kept = root / "kept"
        sizes: list[int] = []

        def report(metrics: dict[str, Any], folder: str | None = None) -> None:
            if folder is not None:
                files = [p for p in Path(folder).iterdir() if p.is_file()]
                sizes.append(sum(p.stat().st_size for p in files))
                kept.mkdir(exist_ok=True)
                for p in files:  # the last checkpoint, to restore from below
                    (kept / p.name).write_bytes(p.read_bytes())

        timings = Timings()
        timings.wrap(loop, "train_epoch", "train")
        timings.wrap(loop, "epoch_report", "evaluate")
        timings.wrap(checkpoint, "capture", "capture")
        timings.wrap(checkpoint, "save", "save")
        timings.wrap(checkpoint, "apply", "apply")
        try:
            loop.run_trial(spec, report, None, checkpoints=True)
            load_s = []
            for _ in range(repeats):
                started = time.perf_counter()
                state = checkpoint.load(kept, rank=0)
                load_s.append(time.perf_counter() - started)
                # a retried trial: built afresh, the state applied, its last epoch trained
                loop.run_trial(spec, lambda *a: None, state, checkpoints=True)
        finally:
            timings.restore()
        s = timings.seconds
        first_run = slice(0, epochs)  # the restored runs' epochs are not counted
        epoch_s = [
            t + e for t, e in zip(s["train"][first_run], s["evaluate"][first_run], strict=True)
        ]
        # the first epoch pays first-call costs a long trial pays once
        steady = epoch_s[1:] or epoch_s
        save_s = [c + v for c, v in zip(s["capture"], s["save"], strict=True)]
        restore_s = [ld + a for ld, a in zip(load_s, s["apply"], strict=True)]
        return {
            "epoch_s": statistics.median(steady),
            "save_s": statistics.median(save_s),
            "restore_s": statistics.median(restore_s),
            "size_mb": statistics.median(sizes) / 1e6,
            "saves": len(save_s),
            "restores": len(restore_s),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(FILES), choices=sorted(FILES))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-train", type=int, default=None, help="default: the file's")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: no checkpoint is taken after the last epoch")
    header = (
        f"{'task':11s} {'epoch s':>8s} {'ckpt MB':>8s} {'save s':>8s} {'save %':>7s} "
        f"{'restore s':>10s} {'restore %':>10s}"
    )
    print(
        f"median of {args.epochs - 1} epochs (the first left out) and checkpoints, "
        f"{args.repeats} restores; "
        + (f"{args.num_train} training images" if args.num_train else "the files' data sets")
    )
    print(header)
    print("-" * len(header))
    for task in args.tasks:
        m = measure(task, args.epochs, args.repeats, args.num_train)
        print(
            f"{task:11s} {m['epoch_s']:8.2f} {m['size_mb']:8.2f} {m['save_s']:8.3f} "
            f"{100 * m['save_s'] / m['epoch_s']:6.2f}% {m['restore_s']:10.3f} "
            f"{100 * m['restore_s'] / m['epoch_s']:9.2f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()

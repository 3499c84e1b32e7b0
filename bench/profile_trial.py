"""Where one short trial's seconds go, measured in-process (no Ray around it).

Run: python bench/profile_trial.py [--epochs 5] [--task regression] [--top 25]

Runs the same trial the overhead benchmark runs (the regression task, 5 epochs) through the
built-in trial loop with a stand-in for ``tune.report``, twice: the first run pays the
imports and first-call costs a fresh trial process pays, the second what a warm process
pays. Prints a table of phases (imports, building the parts, each epoch's training,
evaluation, weights and checkpoint, the final MLflow model) and, with ``--top``, cProfile's
most expensive calls of the cold run. docs/performance.md quotes its output.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

SWEEP = """\
name: profile
task: {{kind: {task}}}
batch: {{effective: 32, micro: 32}}
train: {{epochs: {epochs}, grad_clip: null}}
objective: {{metric: {metric}, mode: {mode}}}
stopping: {{scheduler: {{kind: none}}}}
sweep: {{dir: {dir}}}
"""
OBJECTIVES = {"regression": ("val/mse", "min"), "rtdetr": ("val/map", "max")}


class Phases:
    """Wall seconds per named phase, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, name, timed)


def _instrument(phases: Phases) -> None:
    from orchestrator.training import checkpoint, loop, weights

    phases.wrap(loop, "resolve", "resolve the trial's config")
    phases.wrap(loop, "build_parts", "build parts (Accelerate, data, model, optimizer)")
    phases.wrap(loop, "begin", "batch fit + loss-weight calibration")
    phases.wrap(loop, "train_epoch", "train epochs")
    phases.wrap(loop, "epoch_report", "epoch report (evaluation included)")
    phases.wrap(loop, "judge", "divergence rules")
    phases.wrap(checkpoint, "capture", "checkpoint capture")
    phases.wrap(checkpoint, "save", "checkpoint save (torch.save)")
    phases.wrap(weights.TrialWeights, "save", "weights (model.pt + plan, final MLflow model)")
    phases.wrap(weights.TrialWeights, "_flavour", "  of which: final MLflow model flavour")


def _run(config_path: Path, sweep_dir: Path, phases: Phases) -> float:
    from orchestrator.config.loader import load_sweep
    from orchestrator.tasks import get_task
    from orchestrator.training.loop import run_trial
    from orchestrator.training.spec import TrialSpec

    config = load_sweep(config_path)
    data_root = sweep_dir / "data"
    get_task(config.task.kind).prepare_data()(config.task, data_root)
    out = Path(tempfile.mkdtemp(dir=sweep_dir))
    spec = TrialSpec(
        sweep=config.model_dump(by_alias=True, mode="json"),
        params={},
        data_root=str(data_root),
        output_dir=str(out / "model"),
        memory_cache=str(sweep_dir / "memory.json"),
    )
    reports: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        reports.append(metrics)

    started = time.perf_counter()
    run_trial(spec, report, None, checkpoints=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--task", default="regression", choices=sorted(OBJECTIVES))
    parser.add_argument("--top", type=int, default=0, help="cProfile's N costliest calls")
    args = parser.parse_args()
    metric, mode = OBJECTIVES[args.task]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "sweep.yaml"
        path.write_text(
            SWEEP.format(task=args.task, epochs=args.epochs, metric=metric, mode=mode, dir=root)
        )
        started = time.perf_counter()
        import torch  # noqa: F401

        torch_s = time.perf_counter() - started
        started = time.perf_counter()
        import accelerate  # noqa: F401

        import orchestrator.training.loop  # noqa: F401

        imports_s = time.perf_counter() - started
        profiler = cProfile.Profile()
        for label in ("cold (first trial in a fresh process)", "warm (same process again)"):
            phases = Phases()
            _instrument(phases)
            if label.startswith("cold") and args.top:
                profiler.enable()
            total = _run(path, root, phases)
            profiler.disable()
            print(f"\n{label}: {total:.2f} s for {args.epochs} epochs of {args.task}")
            if label.startswith("cold"):
                print(f"  {'import torch (before the trial)':55s} {torch_s:6.2f} s")
                print(f"  {'import accelerate + orchestrator loop':55s} {imports_s:6.2f} s")
            for name, seconds in phases.seconds.items():
                print(f"  {name:55s} {seconds:6.2f} s  ({phases.calls[name]} calls)")
            _uninstrument()
        if args.top:
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(args.top)
            print(stream.getvalue())
    sys.stdout.flush()


def _uninstrument() -> None:
    import importlib

    from orchestrator.training import checkpoint, loop, weights

    for module in (checkpoint, weights, loop):
        importlib.reload(module)


if __name__ == "__main__":
    main()

"""What MLflow logging costs a sweep: none vs a local SQLite store vs an HTTP tracking server.

Run: python bench/tracking.py [--trials 6] [--epochs 20] [--rounds 3]

The same regression sweep (one local Ray cluster, 1 trial at a time, one report per epoch,
each report logging ~10 metrics and a few tags) runs three ways, interleaved ``--rounds``
times: tracking disabled; ``sqlite:///`` store; ``http://127.0.0.1:PORT`` (a real
``mlflow server`` with a SQLite backend started here). Logging happens in the driver's Tune
callback, which only appends to the sweep's journal; a background thread talks to MLflow.
Printed: each trial's own wall time (Tune's ``time_total_s``) and the sweep's wall time per
trial, as medians and as ratios to no tracking (target: < 2% overhead on trial time). A
fourth setup, the SQLite store with system metrics off, isolates their share.

First, and alone with ``--parts-only`` (seconds, not minutes): what system metrics and
dataset logging cost by themselves, measured directly: one sample in the trial process
(psutil; NVML where present) as a share of the sampling interval, i.e. of trial time; the
driver's once-per-sweep data description and its per-trial journal appends.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.config.loader import load_sweep  # noqa: E402
from orchestrator.tuning.runner import run_sweep  # noqa: E402

SWEEP = """\
name: trk
task: {{kind: regression, num_train: 256, num_val: 64}}
optim: {{name: adamw, lr: 0.01}}
batch: {{effective: 32, micro: 32}}
train: {{epochs: {epochs}, grad_clip: null}}
objective: {{metric: val/mse, mode: min}}
space:
  optim.lr: {{float: [1.0e-3, 1.0e-1], log: true}}
sweep: {{num_samples: {trials}, max_concurrent: 1, dir: {dir}}}
stopping: {{scheduler: {{kind: none}}, divergence: {{}}}}
tracking: {{enabled: {enabled}, uri: "{uri}", system_metrics_s: {system}}}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root}/server.db",
            "--default-artifact-root",
            str(root / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("mlflow server did not start within 90 s")


def _trial_seconds(sweep_dir: Path) -> list[float]:
    """Each trial's own wall time as Tune measured it (``time_total_s`` of its last report)."""
    out = []
    for result in sorted((sweep_dir / "ray" / "tune").glob("trainable_*/result.json")):
        lines = [ln for ln in result.read_text().splitlines() if ln.strip()]
        out.append(float(json.loads(lines[-1])["time_total_s"]))
    return out


def _sweep(
    root: Path, trials: int, epochs: int, enabled: bool, uri: str, system: float = 10.0
) -> tuple[float, float]:
    path = root / f"trk-{time.monotonic_ns()}.yaml"
    path.write_text(
        SWEEP.format(
            trials=trials,
            epochs=epochs,
            dir=root / "sweeps",
            enabled=str(enabled).lower(),
            uri=uri,
            system=system,
        )
    )
    started = time.perf_counter()
    summary = run_sweep(load_sweep(path), out=io.StringIO())
    wall = (time.perf_counter() - started) / trials
    return wall, statistics.median(_trial_seconds(Path(summary.sweep_dir)))


def _median_s(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def parts(root: Path) -> None:
    """System metrics and dataset logging, each measured on its own."""
    from orchestrator.config.loader import load_sweep as load
    from orchestrator.tasks import get_task
    from orchestrator.tracking.journal import Journal
    from orchestrator.training.system_metrics import SystemSampler

    sampler = SystemSampler(3600)
    sampler.sample()
    sample_s = _median_s(sampler.sample, 50)
    gpus = len(sampler._gpus)
    print(f"one system-metrics sample ({gpus} GPU(s) via NVML): {sample_s * 1e3:.2f} ms")
    for interval in (10.0, 1.0):
        print(f"  every {interval:g} s: {sample_s / interval:.4%} of a trial's wall time")
    config = load(ROOT / "search_spaces" / "smoke.yaml")
    spec = get_task(config.task.kind)
    data_root = root / "data"
    spec.prepare_data()(config.task, data_root)
    describe = spec.describe_data()
    datasets: list[dict[str, object]] = []

    def run_describe() -> None:
        datasets[:] = describe(config.task, data_root)

    describe_s = _median_s(run_describe, 5)
    print(
        f"dataset description (smoke's synthetic train/val, once per sweep, driver): "
        f"{describe_s * 1e3:.1f} ms"
    )
    journal = Journal(root / "journal")
    samples = [[0, sampler.sample()]]
    op_s = _median_s(
        lambda: journal.append({"op": "inputs", "key": "k", "datasets": datasets}), 50
    )
    sys_s = _median_s(
        lambda: journal.append({"op": "log_system", "key": "k", "metrics": samples}), 50
    )
    journal.close()
    print(
        f"driver per trial: inputs op {op_s * 1e3:.2f} ms (fsync'd append), one report's "
        f"system samples {sys_s * 1e3:.2f} ms; the writer applies both off the critical path"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts-only", action="store_true", help="only the direct costs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        parts(Path(tmp))
    if args.parts_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server, url = _server(root)
        try:
            setups = {
                "no tracking": (False, f"sqlite:///{root}/unused.db"),
                "sqlite store": (True, f"sqlite:///{root}/local.db"),
                "HTTP server": (True, url),
                "sqlite, no sys": (True, f"sqlite:///{root}/nosys.db"),
            }
            _sweep(root, 2, 2, False, setups["no tracking"][1])  # warm-up: Ray, imports
            walls: dict[str, list[float]] = {k: [] for k in setups}
            trial_times: dict[str, list[float]] = {k: [] for k in setups}
            for _ in range(args.rounds):
                for name, (enabled, uri) in setups.items():
                    system = 0.0 if name == "sqlite, no sys" else 10.0
                    wall, trial = _sweep(root, args.trials, args.epochs, enabled, uri, system)
                    walls[name].append(wall)
                    trial_times[name].append(trial)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{args.trials} trials x {args.epochs} epochs per sweep, {args.rounds} interleaved "
        "rounds; medians over rounds"
    )
    for title, table in (
        ("trial wall time (Tune's time_total_s, median trial)", trial_times),
        ("sweep wall time per trial (start-up, final flush and registration included)", walls),
    ):
        base = statistics.median(table["no tracking"])
        print(f"{title}:")
        for name, values in table.items():
            med = statistics.median(values)
            print(f"  {name:14s} {med:7.3f} s  x{med / base:.3f}  {[round(v, 3) for v in values]}")


if __name__ == "__main__":
    main()

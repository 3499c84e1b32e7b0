"""What MLflow logging costs a sweep: none vs a local SQLite store vs an HTTP tracking server.

Run: python bench/tracking.py [--trials 6] [--epochs 20] [--rounds 3]

The same regression sweep (one local Ray cluster, 1 trial at a time, one report per epoch,
each report logging ~10 metrics and a few tags) runs three ways, interleaved ``--rounds``
times: tracking disabled; ``sqlite:///`` store; ``http://127.0.0.1:PORT`` (a real
``mlflow server`` with a SQLite backend started here). Logging happens in the driver's Tune
callback, which only appends to the sweep's journal; a background thread talks to MLflow.
Printed: each trial's own wall time (Tune's ``time_total_s``) and the sweep's wall time per
trial, as medians and as ratios to no tracking (target: < 2% overhead on trial time), with
the spread over rounds, which says what difference the run can resolve. A fourth setup, the
SQLite store with system metrics off, isolates their share.

Wall time on a shared 2-core machine moves by more than 2% between rounds, so MLflow's cost
is also measured where it is paid, in CPU seconds: the driver process's (this process: the
Tune callbacks, the journal, the writer thread and its MLflow client) and, for the HTTP
setup, the server's. Their difference to no tracking, divided by the metric values and the
trials the sweep logged (counted in its journal), is MLflow's cost per metric and per trial.
That difference of two process totals is itself noisy (Ray's own threads share the
process), so the tracking code's CPU is also metered directly: ``time.thread_time()``
around every call of the driver's tracker (its Tune-callback side, journal appends
included) and around every op the journal writer thread applies to MLflow. Thread CPU time
does not move with the machine's load the way wall time does; its spread over rounds is
what this bench resolves, printed as a share of a trial's time (target: 2%).

First, and alone with ``--parts-only`` (seconds, not minutes): what system metrics and
dataset logging cost by themselves, measured directly: one sample in the trial process
(psutil; NVML where present) as a share of the sampling interval, i.e. of trial time; the
driver's once-per-sweep data description and its per-trial journal appends.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.config.loader import load_sweep  # noqa: E402
from orchestrator.tracking.mlflow_tracker import SweepTracker  # noqa: E402
from orchestrator.tracking.writer import JournalWriter  # noqa: E402
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


@dataclass
class Run:
    """One sweep's measurements: wall s per trial, median trial s, CPU s, metric values, and
    the tracking code's own thread CPU s (driver calls, writer thread)."""

    wall: float
    trial: float
    cpu: float
    metrics: int
    driver_cpu: float = 0.0
    writer_cpu: float = 0.0


class _Meter:
    """Thread CPU seconds spent inside the tracking code, metered per call.

    The driver side (``SweepTracker``'s methods, called from the Tune callbacks on the
    driver's main thread; each appends ops to the journal) and the writer side
    (``JournalWriter._step``: one op applied to MLflow, in the writer's thread) are wrapped
    with ``time.thread_time()``. A call made from inside a metered call counts once."""

    DRIVER = (
        "start_sweep", "start_trial", "log_result", "end_trial",
        "end_running_trials", "end_lost_trials", "log_datasets", "end_sweep",
        "log_artifact", "log_trial_artifacts", "log_trial_model", "register_best",
    )  # fmt: skip

    def __init__(self) -> None:
        import threading

        self.seconds = {"driver": 0.0, "writer": 0.0}
        self._depth = threading.local()

    def wrap(self, cls: type, name: str, side: str) -> None:
        import functools

        fn = getattr(cls, name)

        @functools.wraps(fn)
        def metered(*args: object, **kwargs: object) -> object:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:
                    self.seconds[side] += time.thread_time() - started

        setattr(cls, name, metered)

    def install(self) -> _Meter:
        for name in self.DRIVER:
            self.wrap(SweepTracker, name, "driver")
        self.wrap(JournalWriter, "_step", "writer")
        return self

    def take(self) -> tuple[float, float]:
        """The seconds since the last take."""
        out = (self.seconds["driver"], self.seconds["writer"])
        self.seconds = {"driver": 0.0, "writer": 0.0}
        return out


_METER = _Meter()


def _cpu_s(pid: int | None) -> float:
    """CPU seconds of process ``pid`` and its children (``None``: none)."""
    if pid is None:
        return 0.0
    import psutil

    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just ended
            total += sum(child.cpu_times()[:2])
    return total


def _metric_values(sweep_dir: Path) -> int:
    """Metric values the sweep's journal sent to MLflow (training and system metrics)."""
    ops = sweep_dir / "tracking" / "ops.jsonl"
    if not ops.is_file():
        return 0
    count = 0
    for line in ops.read_text().splitlines():
        op = json.loads(line)
        if op["op"] == "log_batch":
            count += len(op.get("metrics", []))
        elif op["op"] == "log_system":
            count += sum(len(sample) for _, sample in op.get("metrics", []))
    return count


def _sweep(
    root: Path,
    trials: int,
    epochs: int,
    enabled: bool,
    uri: str,
    system: float = 10.0,
    server: int | None = None,
) -> Run:
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
    cpu = time.process_time() + _cpu_s(server)
    _METER.take()
    started = time.perf_counter()
    summary = run_sweep(load_sweep(path), out=io.StringIO())
    wall = (time.perf_counter() - started) / trials
    cpu = time.process_time() + _cpu_s(server) - cpu
    driver_cpu, writer_cpu = _METER.take()
    sweep_dir = Path(summary.sweep_dir)
    return Run(
        wall,
        statistics.median(_trial_seconds(sweep_dir)),
        cpu,
        _metric_values(sweep_dir),
        driver_cpu,
        writer_cpu,
    )


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


def _half_width(values: list[float]) -> float:
    """The half-width of the 95% t-interval of the mean of ``values``."""
    if len(values) < 2:
        return float("nan")
    from scipy import stats

    return float(
        stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    )


def _resolution(ratios: list[float]) -> str:
    """The half-width of the 95% t-interval of the mean per-round ratio: the smallest
    difference to no tracking this run can tell from noise (the target: 2%)."""
    if len(ratios) < 2:
        return "n/a (one round)"
    half = _half_width(ratios)
    return f"+-{half:.1%}{'' if half <= 0.02 else ' (> 2%: more rounds)'}"


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
    _METER.install()
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
            # warm-up, every setup once: Ray, imports (MLflow's in the writer's first op),
            # each store's creation; paid in the first round only, they would be its noise
            for name, (enabled, uri) in setups.items():
                pid = server.pid if name == "HTTP server" else None
                _sweep(root, 1, 2, enabled, uri, 10.0, pid)
            runs: dict[str, list[Run]] = {k: [] for k in setups}
            for _ in range(args.rounds):  # interleaved: drift on the machine hits all alike
                for name, (enabled, uri) in setups.items():
                    system = 0.0 if name == "sqlite, no sys" else 10.0
                    pid = server.pid if name == "HTTP server" else None
                    runs[name].append(
                        _sweep(root, args.trials, args.epochs, enabled, uri, system, pid)
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{args.trials} trials x {args.epochs} epochs per sweep, {args.rounds} interleaved "
        "rounds; medians over rounds, [min, max] of the per-round ratios, and what the "
        "rounds resolve (the 95% t-interval of the mean ratio, +-)"
    )
    base_runs = runs["no tracking"]
    for title, attr in (
        ("trial wall time (Tune's time_total_s, median trial)", "trial"),
        ("sweep wall time per trial (start-up, final flush and registration included)", "wall"),
        ("driver CPU s per sweep (+ the server's, HTTP)", "cpu"),
    ):
        base = statistics.median(getattr(r, attr) for r in base_runs)
        print(f"{title}:")
        for name, rs in runs.items():
            values = [getattr(r, attr) for r in rs]
            med = statistics.median(values)
            ratios = [v / getattr(b, attr) for v, b in zip(values, base_runs, strict=True)]
            print(
                f"  {name:14s} {med:8.3f} s  x{med / base:.3f}  "
                f"[{min(ratios):.3f}, {max(ratios):.3f}]  resolves {_resolution(ratios)}"
            )
    base_cpu = statistics.median(r.cpu for r in base_runs)
    print("MLflow's cost in CPU time (vs no tracking):")
    for name, rs in runs.items():
        if name == "no tracking":
            continue
        extra = statistics.median(r.cpu for r in rs) - base_cpu
        metrics = statistics.median(r.metrics for r in rs)
        per_trial = extra / args.trials
        per_metric = extra / metrics * 1e3 if metrics else float("nan")
        trial_wall = statistics.median(r.trial for r in base_runs)
        print(
            f"  {name:14s} {extra:7.2f} CPU s per sweep, {per_trial:.3f} per trial "
            f"({per_trial / trial_wall:.2%} of one core over a trial), "
            f"{per_metric:.3f} ms per metric value ({metrics:.0f} values)"
        )

    print(
        "The tracking code's own thread CPU, metered per call (driver: the tracker's calls "
        "from the Tune callbacks, journal appends included; writer: ops applied to MLflow), "
        "mean per round +- the 95% t-interval:"
    )
    trial_s = statistics.median(r.trial for r in base_runs)
    for name, rs in runs.items():
        if name == "no tracking":
            continue
        per_trial = [(r.driver_cpu + r.writer_cpu) / args.trials for r in rs]
        per_metric = [(r.driver_cpu + r.writer_cpu) / r.metrics * 1e3 for r in rs if r.metrics]
        share = [v / trial_s for v in per_trial]
        driver = statistics.mean(r.driver_cpu / args.trials for r in rs)
        writer = statistics.mean(r.writer_cpu / args.trials for r in rs)
        half = _half_width(share)
        # the same seconds are a smaller share of a longer trial: the interval's half-width
        # in seconds is 2% of a trial this long, the shortest whose 2% this run resolves
        resolves_from = _half_width(per_trial) / 0.02
        print(
            f"  {name:14s} per trial {statistics.mean(per_trial):.3f} s "
            f"+-{_half_width(per_trial):.3f} (driver {driver:.3f}, writer {writer:.3f}); "
            f"per metric value {statistics.mean(per_metric):.3f} ms "
            f"+-{_half_width(per_metric):.3f}; = {statistics.mean(share):.1%} "
            f"+-{half:.1%} of a {trial_s:.3f} s trial; resolves 2% of a trial from "
            f"{resolves_from:.2f} s on"
        )
    print(
        "  (the HTTP row's writer CPU is the client's only; the server's is in the CPU rows above)"
    )


if __name__ == "__main__":
    main()

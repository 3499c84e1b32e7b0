"""The tabular search benchmark (orchestrator/replay/tabular.py, bench/search.py) on a small
generated table: nearest-configuration lookup, one simulated sweep, regret bands, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from orchestrator.config.models import ParamSpec

SPACE = {
    "optim.lr": ParamSpec.model_validate({"float": [1.0e-3, 1.0], "log": True}),
    "loss.weight.mse": ParamSpec.model_validate({"float": [0.1, 10.0], "log": True}),
    "loss.reduction": ParamSpec.model_validate({"choice": ["mean", "sum"]}),
}

SWEEP = """\
name: tab
task: {kind: regression}
objective: {metric: val/mse, mode: min}
train: {epochs: 6}
space:
  optim.lr: {float: [1.0e-3, 1.0], log: true}
  loss.weight.mse: {float: [0.1, 10.0], log: true}
  loss.reduction: {choice: [mean, sum]}
sweep: {sampler: {kind: tpe, n_startup_trials: 3}}
stopping:
  scheduler: {kind: asha, grace_period: 2, reduction_factor: 2}
"""


def curve(lr: float, w: float, reduction: str, epochs: int = 6) -> list[dict[str, float]]:
    """val/mse falls towards a floor that is lowest at lr*w = 0.03; above 0.3 the loss is
    NaN from the second epoch on (the nonfinite rule stops it there)."""
    floor = 0.05 + 0.02 * (math.log10(lr * w) - math.log10(0.03)) ** 2
    floor += 0.01 if reduction == "sum" else 0.0
    out = []
    for e in range(1, epochs + 1):
        loss = math.nan if lr * w > 0.3 and e >= 2 else floor + math.exp(-e)
        out.append({"train/loss": loss, "val/mse": loss})
    return out


def write_table(path: Path, n: int = 40) -> Path:
    import random

    rng = random.Random(0)
    with path.open("w") as f:
        for i in range(n):
            lr = 10 ** rng.uniform(-3, 0)
            w = 10 ** rng.uniform(-1, 1)
            red = rng.choice(["mean", "sum"])
            params = {"optim.lr": str(lr), "loss.weight.mse": str(w), "loss.reduction": red}
            f.write(json.dumps({"trial": f"r{i}", "params": params, "history": curve(lr, w, red)}))
            f.write("\n")
    return path


def test_nearest_configuration_uses_log_scale_and_counts_a_differing_choice_as_one():
    from orchestrator.replay.curves import Curve
    from orchestrator.replay.tabular import Table, distance, nearest

    a = {"optim.lr": 0.01, "loss.weight.mse": 1.0, "loss.reduction": "mean"}
    b = {"optim.lr": 0.1, "loss.weight.mse": 1.0, "loss.reduction": "sum"}
    # lr: log10 range is 3 decades, 0.01 -> 0.1 is one of them: 1/3; the choice differs: 1
    assert distance(SPACE, a, b) == pytest.approx(math.sqrt((1 / 3) ** 2 + 1))
    # a key present in one configuration only counts 1
    assert distance(SPACE, a, {k: v for k, v in a.items() if k != "loss.reduction"}) == 1.0
    table = Table.of(
        [
            Curve("x", [{"val/mse": 1.0}], params={k: str(v) for k, v in a.items()}),
            Curve("y", [{"val/mse": 1.0}], params={k: str(v) for k, v in b.items()}),
        ],
        SPACE,
    )
    assert table.configs[0] == a  # strings as MLflow logs them, parsed back
    near_b = {"optim.lr": 0.09, "loss.weight.mse": 1.0, "loss.reduction": "sum"}
    assert nearest(table, near_b) == 1
    assert nearest(table, {**near_b, "loss.reduction": "mean"}) == 0


def test_regret_band_mean_and_t_interval_by_hand():
    from orchestrator.replay.tabular import SearchRun, regret_band

    runs = [
        SearchRun("tpe", "none", 0, compute=[2, 4], best=[0.5, 0.2]),
        SearchRun("tpe", "none", 1, compute=[3], best=[0.3]),
    ]
    band = regret_band(runs, best=0.1, worst=0.9, mode="min", grid=[1, 2, 4])
    # at 1: nothing known, regret 0.8 for both; at 2: 0.4 and 0.8; at 4: 0.1 and 0.2
    assert band.mean == pytest.approx([0.8, 0.6, 0.15])
    # n = 2: t(0.975, 1) = 12.706; sd of (0.4, 0.8) = 0.2828; half = 12.706 * 0.2828 / 1.414
    assert band.high[1] == pytest.approx(0.6 + 12.7062 * 0.28284 / 1.41421, rel=1e-3)
    assert band.low[1] == 0.0  # clipped at zero
    assert band.low[0] == band.high[0] == pytest.approx(0.8)


def test_simulated_sweep_spends_its_budget_and_tells_the_sampler(tmp_path, write_sweep):
    from orchestrator.config import load_sweep
    from orchestrator.replay.curves import load_curves
    from orchestrator.replay.tabular import Table, simulate

    sys_path = Path(__file__).resolve().parents[2] / "bench"
    import sys

    sys.path.insert(0, str(sys_path))
    try:
        import search as bench
    finally:
        sys.path.remove(str(sys_path))
    config = load_sweep(write_sweep(base=SWEEP))
    table = Table.of(load_curves(write_table(tmp_path / "t.jsonl")), dict(config.space))
    best, _ = table.best("val/mse", "min")
    assert best == pytest.approx(
        min(r["val/mse"] for c in table.curves for r in c.history if not math.isnan(r["val/mse"]))
    )
    policy = bench.policy_for(config, "none")
    run = simulate(table, config, bench.sampler_for(config, "tpe", 0), policy, budget=30)
    assert run.compute[-1] >= 30 and run.compute == sorted(run.compute)
    assert all(b1 >= b2 for b1, b2 in zip(run.best, run.best[1:], strict=False))
    # diverging rows stop at their first NaN (2 reports), others run 6: trials x reports
    bad = bench.diverging_rows(table, policy)
    spent = sum(2 if row in bad else 6 for row in run.table_rows)
    assert run.compute[-1] == spent and run.trials == len(run.table_rows)


def test_bench_cli_writes_table_and_plot(tmp_path, write_sweep):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    table = write_table(tmp_path / "t.jsonl")
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "bench/search.py"),
            "--table",
            str(table),
            "--config",
            str(write_sweep(base=SWEEP)),
            "--samplers",
            "tpe,random",
            "--schedulers",
            "none,asha",
            "--seeds",
            "3",
            "--budget",
            "36",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "out/search.md").read_text()
    assert "| tpe | asha |" in text and "| random | none |" in text
    svg_text = (tmp_path / "out/regret.svg").read_text()
    assert svg_text.count("<polyline") == 4 and svg_text.count("<polygon") == 4

"""Search efficiency without training: sampler x scheduler over a recorded table.

Run: python bench/search.py --table bench/curves/rtdetr_table.jsonl \
         --config search_spaces/rtdetr.yaml --samplers tpe,gp,random,qmc \
         --schedulers none,asha --seeds 20 --budget 400 --out bench/results/search

Each (sampler, scheduler, seed) is one simulated sweep (``orchestrator.replay.tabular``):
the sweep file's space, objective, start points, divergence rules and sampler/scheduler
settings (a sampler or scheduler of another kind runs with its defaults), the sampler's
suggestions answered by the nearest recorded configuration of the table, ``--budget``
reports (epochs) of compute, ``--concurrency`` trials at once. Regret is the distance of the
best value so far (a finished trial's last report; diverged trials do not count) to the
table's best report. Writes ``search.md`` (mean regret with 95% intervals at 25/50/100% of
the budget, trials run, share of suggestions that landed on a diverging recorded curve) and
``regret.svg`` (mean regret vs compute, with bands) to ``--out``, and prints the table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.compare import svg  # noqa: E402
from orchestrator.config import load_sweep  # noqa: E402
from orchestrator.config.models import SAMPLERS, SCHEDULERS, SweepConfig  # noqa: E402
from orchestrator.divergence import build_rules  # noqa: E402
from orchestrator.replay.curves import load_curves  # noqa: E402
from orchestrator.replay.simulate import Policy, SchedulerSpec  # noqa: E402
from orchestrator.replay.tabular import (  # noqa: E402
    Band,
    SearchRun,
    Table,
    regret_band,
    simulate,
)


def sampler_for(config: SweepConfig, kind: str, seed: int) -> Any:
    """The sweep's sampler settings when it is of ``kind``, else ``kind``'s defaults."""
    own = config.sweep.sampler
    data = own.model_dump() if own.kind == kind else {"kind": kind}
    return SAMPLERS.get(kind).model_validate({**data, "seed": seed})


def policy_for(config: SweepConfig, kind: str) -> Policy:
    """The sweep's scheduler settings when it is of ``kind``, plus its divergence rules."""
    own = config.stopping.scheduler
    settings = own if own.kind == kind else SCHEDULERS.get(kind).model_validate({"kind": kind})
    rules = build_rules(config.stopping.divergence, (config.primary.metric, config.primary.mode))
    return Policy(kind, SchedulerSpec(settings), rules)


def diverging_rows(table: Table, policy: Policy) -> set[int]:
    """Table rows the divergence rules stop (a suggestion landing there is wasted)."""
    out = set()
    for i, curve in enumerate(table.curves):
        for n in range(1, len(curve.history) + 1):
            if policy.rules is not None and policy.rules.check(curve.history[:n]) is not None:
                out.add(i)
                break
    return out


def run_all(
    table: Table,
    config: SweepConfig,
    samplers: list[str],
    schedulers: list[str],
    seeds: int,
    budget: int,
    concurrency: int,
) -> dict[tuple[str, str], list[SearchRun]]:
    out: dict[tuple[str, str], list[SearchRun]] = {}
    for kind in samplers:
        for sched in schedulers:
            policy = policy_for(config, sched)
            out[(kind, sched)] = [
                simulate(
                    table,
                    config,
                    sampler_for(config, kind, seed),
                    policy,
                    budget=budget,
                    concurrency=concurrency,
                )
                for seed in range(seeds)
            ]
    return out


def render_table(
    bands: dict[tuple[str, str], Band],
    runs: dict[tuple[str, str], list[SearchRun]],
    wasted: dict[tuple[str, str], float],
    budget: int,
) -> str:
    fractions = (0.25, 0.5, 1.0)
    head = " | ".join(f"regret @{int(f * 100)}% budget" for f in fractions)
    lines = [
        f"| sampler | scheduler | {head} | trials | diverging suggestions |",
        "|---|---|" + "---|" * len(fractions) + "---|---|",
    ]
    for key, band in bands.items():
        cells = []
        for f in fractions:
            i = min(range(len(band.compute)), key=lambda j: abs(band.compute[j] - f * budget))
            cells.append(f"{band.mean[i]:.4f} [{band.low[i]:.4f}, {band.high[i]:.4f}]")
        trials = sum(r.trials for r in runs[key]) / len(runs[key])
        lines.append(
            f"| {key[0]} | {key[1]} | {' | '.join(cells)} | {trials:.1f} | {wasted[key]:.0%} |"
        )
    return "\n".join(lines) + "\n"


def render_svg(bands: dict[tuple[str, str], Band], title: str) -> str:
    width, height, left, right, top, bottom = 720, 420, 70, 200, 40, 50
    xs = [c for b in bands.values() for c in b.compute]
    ys = [v for b in bands.values() for v in (*b.low, *b.high)]
    x = svg.Scale(min(xs), max(xs), left, width - right)
    y = svg.Scale(0.0, max(ys) * 1.05 or 1.0, height - bottom, top)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>",
        "<rect width='100%' height='100%' fill='white'/>",
        svg.text(width / 2, 22, title, size=14),
    ]
    for t in svg.ticks(min(xs), max(xs)):
        parts += [svg.line(x(t), top, x(t), height - bottom), svg.text(x(t), height - 30, t)]
    for t in svg.ticks(0.0, max(ys) * 1.05 or 1.0):
        parts += [
            svg.line(left, y(t), width - right, y(t)),
            svg.text(left - 6, y(t) + 4, f"{t:g}", anchor="end"),
        ]
    parts.append(svg.text((left + width - right) / 2, height - 8, "compute (epochs)"))
    parts.append(svg.text(16, top - 10, "regret", anchor="start"))
    for n, (key, band) in enumerate(bands.items()):
        colour = svg.color(n)
        upper = [f"{x(c):.1f},{y(v):.1f}" for c, v in zip(band.compute, band.high, strict=True)]
        lower = [f"{x(c):.1f},{y(v):.1f}" for c, v in zip(band.compute, band.low, strict=True)]
        parts.append(
            f"<polygon points='{' '.join(upper + lower[::-1])}' fill='{colour}' "
            "fill-opacity='0.15' stroke='none'/>"
        )
        mean = [f"{x(c):.1f},{y(v):.1f}" for c, v in zip(band.compute, band.mean, strict=True)]
        parts.append(
            f"<polyline points='{' '.join(mean)}' fill='none' stroke='{colour}' stroke-width='2'/>"
        )
        ly = top + 16 * n + 10
        parts.append(svg.line(width - right + 10, ly, width - right + 30, ly, colour, 3))
        parts.append(svg.text(width - right + 36, ly + 4, f"{key[0]} + {key[1]}", anchor="start"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="curves JSON Lines with params")
    parser.add_argument("--config", required=True, help="sweep file: space, objective, rules")
    parser.add_argument("--samplers", default="tpe,random")
    parser.add_argument("--schedulers", default="none,asha")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=200, help="reports (epochs) per run")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--points", type=int, default=41, help="compute points in the plot")
    parser.add_argument("--out", default=str(ROOT / "bench/results/search"))
    args = parser.parse_args(argv)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_sweep(args.config)
    table = Table.of(load_curves(args.table), dict(config.space))
    metric, mode = config.primary.metric, config.primary.mode
    best, worst = table.best(metric, mode)
    started = time.monotonic()
    samplers = [s for s in args.samplers.split(",") if s]
    schedulers = [s for s in args.schedulers.split(",") if s]
    runs = run_all(table, config, samplers, schedulers, args.seeds, args.budget, args.concurrency)
    grid = [args.budget * i / (args.points - 1) for i in range(args.points)]
    bands = {key: regret_band(r, best, worst, mode, grid) for key, r in runs.items()}
    wasted = {}
    for key, rs in runs.items():
        bad = diverging_rows(table, policy_for(config, key[1]))
        rows = [row for r in rs for row in r.table_rows]
        wasted[key] = sum(row in bad for row in rows) / max(1, len(rows))
    text = (
        f"{len(table.curves)} recorded configurations ({args.table}), {metric} {mode}, "
        f"table best {best:.4g}; {args.seeds} seeds, budget {args.budget} epochs, "
        f"concurrency {args.concurrency}; {time.monotonic() - started:.0f} s\n\n"
        + render_table(bands, runs, wasted, args.budget)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.md").write_text(text)
    (out / "regret.svg").write_text(render_svg(bands, f"regret of {metric} vs compute"))
    sys.stdout.write(text)
    sys.stdout.write(f"wrote {out / 'search.md'} and {out / 'regret.svg'}\n")
    return 0 if all(math.isfinite(v) for b in bands.values() for v in b.mean) else 1


if __name__ == "__main__":
    raise SystemExit(main())

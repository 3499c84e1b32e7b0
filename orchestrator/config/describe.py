"""A short human description of a validated sweep (what ``orchestrate validate`` prints)."""

from __future__ import annotations

import itertools

from orchestrator.config.batch import batch_problem
from orchestrator.config.checks import discrete_values
from orchestrator.config.models import SweepConfig


def describe(config: SweepConfig) -> str:
    conditional = [k for k, v in config.space.items() if v.when]
    objs = ", ".join(f"{o.metric} ({o.mode})" for o in config.objectives)
    sched = config.stopping.scheduler.kind
    lines = [
        f"  task: {config.task.kind}; objective: {objs}",
        f"  {len(config.space)} searched parameters ({len(conditional)} conditional); "
        f"{config.sweep.num_samples} trials, {config.sweep.max_concurrent} at a time, "
        f"sampler {config.sweep.sampler.kind}, scheduler {sched}",
        f"  {config.resources.workers} worker(s) per trial, {config.train.epochs} epochs",
    ]
    for name, spec in config.space.items():
        if spec.choice is not None:
            what = f"choice {spec.choice}"
        else:
            low, high = spec.bounds
            what = f"{spec.kind} [{low:g}, {high:g}]" + (" log" if spec.log else "")
            if spec.step:
                what += f" step {spec.step:g}"
        when = ""
        if spec.when:
            when = "  when " + " and ".join(f"{k} in {v}" for k, v in spec.when.items())
        lines.append(f"    {name}: {what}{when}")
    eff = discrete_values(config, "effective")
    mic = discrete_values(config, "micro")
    if eff and mic:
        bad = [
            (e, m)
            for e, m in itertools.product(eff, mic)
            if batch_problem(int(e), m, config.resources.workers)
        ]
        if bad:
            shown = ", ".join(f"{e}/{m}" for e, m in bad[:6])
            lines.append(
                f"  note: {len(bad)} of {len(eff) * len(mic)} effective/micro batch "
                f"combinations are impossible with {config.resources.workers} worker(s) and "
                f"will be skipped if sampled: {shown}"
            )
    return "\n".join(lines)

"""``orchestrate replay``: the command behind the CLI entry (argument handling and output)."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import TextIO

from orchestrator.config.models import SCHEDULERS
from orchestrator.divergence import DivergenceConfig, build_rules
from orchestrator.errors import CurvesError
from orchestrator.replay.curves import Curve, curves_from_mlflow, load_curves, write_curves
from orchestrator.replay.evaluate import PolicyScore, render, render_stops, score
from orchestrator.replay.simulate import Policy, SchedulerSpec


@dataclass
class ReplayOptions:
    """What ``orchestrate replay`` was asked for."""

    curves: str | None = None
    config: str | None = None
    overrides: tuple[str, ...] = ()
    from_mlflow: str | None = None
    tracking_uri: str | None = None
    export: str | None = None
    scheduler: str | None = None
    concurrency: int | None = None
    top_k: int = 3
    metric: str | None = None
    mode: str | None = None
    as_json: bool = False
    #: list every trial the sweep's policy stopped, with when and why
    show_trials: bool = False


def policies(
    rules: DivergenceConfig, spec: SchedulerSpec, objective: tuple[str, str]
) -> list[Policy]:
    """The policies compared: no early stopping, the scheduler as Ray ships it, ours without
    rules, the rules alone, and what a sweep runs (scheduler + rules)."""
    detector = build_rules(rules, (objective[0], "max" if objective[1] == "max" else "min"))
    none = SchedulerSpec.of("none")
    out = [Policy("no early stop", none, None)]  # the last policy is the sweep's own
    if spec.kind == "forecast":  # ours only: there is no Ray original to compare
        out.append(Policy("forecast (no rules)", spec, None))
    elif spec.kind != "none":
        plain = dataclasses.replace(spec, safe=False)
        out += [
            Policy(f"{spec.kind} (Ray as shipped)", plain, None),
            Policy(f"{spec.kind} (NaN = worst)", spec, None),
        ]
    out.append(Policy("rules only", none, detector))
    if spec.kind != "none":
        out.append(Policy(f"{spec.kind} + rules (sweep default)", spec, detector))
    return out


def run_replay(opts: ReplayOptions, out: TextIO | None = None) -> list[PolicyScore]:
    out = out or sys.stdout
    rules, spec, metric, mode, concurrency = _settings(opts)
    curves = _curves(opts)
    if opts.export:
        n = write_curves(curves, opts.export)
        # stderr under --json, so stdout stays one JSON document
        (sys.stderr if opts.as_json else out).write(f"wrote {n} curves to {opts.export}\n")
    scores = [
        score(curves, p, metric=metric, mode=mode, concurrency=concurrency, top_k=opts.top_k)
        for p in policies(rules, spec, (metric, mode))
    ]
    configured = scores[-1]  # what `orchestrate sweep` would run with these settings
    if opts.as_json:
        payload = {
            "curves": len(curves),
            "concurrency": concurrency,
            "objective": {"metric": metric, "mode": mode},
            "policy": configured.policy,
            "compute_fraction": configured.compute_fraction,
            "diverged_recall": configured.diverged_recall,
            "topk_false_stops": configured.topk_false_stops,
            "mean_detection_delay": configured.mean_detection_delay,
            "stopped": [
                {
                    "trial": o.trial,
                    "report": o.reports,
                    "by": o.stopped_by,
                    "reason": o.reason,
                    "detail": o.detail,
                }
                for o in configured.outcomes
                if o.stopped_by
            ],
            "policies": [s.to_dict() for s in scores],
        }
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        out.write(f"objective {metric} ({mode})\n")
        out.write(render(scores, len(curves), concurrency))
        if opts.show_trials:
            out.write(render_stops(curves, configured))
    return scores


def _curves(opts: ReplayOptions) -> list[Curve]:
    if opts.from_mlflow:
        from orchestrator.tracking.uri import resolve_tracking_uri

        return curves_from_mlflow(opts.from_mlflow, resolve_tracking_uri(opts.tracking_uri))
    if not opts.curves:
        raise CurvesError("replay needs a curves file or --from-mlflow EXPERIMENT")
    return load_curves(opts.curves)


def _settings(
    opts: ReplayOptions,
) -> tuple[DivergenceConfig, SchedulerSpec, str, str, int]:
    """Rules, scheduler, objective and concurrency: from ``--config`` or the defaults,
    then the command-line flags."""
    rules = DivergenceConfig()
    spec = SchedulerSpec()
    metric, mode, concurrency = "val/map", "max", 4
    if opts.config:
        from orchestrator.config import load_sweep

        config = load_sweep(opts.config, list(opts.overrides))
        rules = config.stopping.divergence
        spec = SchedulerSpec(config.stopping.scheduler, lr_schedule=config.optim.schedule)
        metric, mode = config.primary.metric, config.primary.mode
        concurrency = config.sweep.max_concurrent
    if opts.scheduler:
        # the other kind keeps the settings the two have in common (grace_period ...)
        cls = SCHEDULERS.get(opts.scheduler)
        shared = {k: v for k, v in spec.config.model_dump().items() if k in cls.model_fields}
        spec = SchedulerSpec(
            cls.model_validate({**shared, "kind": opts.scheduler}), lr_schedule=spec.lr_schedule
        )
    metric = opts.metric or metric
    mode = opts.mode or mode
    concurrency = opts.concurrency or concurrency
    return rules, spec, metric, mode, concurrency

"""Parameter importance with Optuna's evaluators, on an in-memory study rebuilt from MLflow:
each trial's sampled values (:attr:`Trial.sampled`) with distributions from the sweep's
resolved ``space:``; inactive conditional parameters are absent from a trial, as Optuna's
sampler left them out, and PED-ANOVA handles such conditional spaces.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from orchestrator.compare.records import ObjectiveSpec, Trial
from orchestrator.compare.space import parse_space
from orchestrator.config.models import ParamSpec

#: below this many scored trials an importance is noise, and PED-ANOVA warns or fails
MIN_TRIALS = 4


def distribution(spec: ParamSpec) -> Any:
    """The Optuna distribution :func:`orchestrator.search_space.space.suggest` sampled from."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if spec.choice is not None:
        return CategoricalDistribution(spec.choice)
    low, high = spec.bounds
    if spec.int_ is not None:
        return IntDistribution(int(low), int(high), log=spec.log, step=int(spec.step or 1))
    return FloatDistribution(low, high, log=spec.log, step=spec.step)


def param_importances(
    trials: Sequence[Trial],
    objectives: Sequence[ObjectiveSpec],
    space: dict[str, dict[str, Any]],
) -> dict[str, dict[str, float]]:
    """``objective metric -> {param: importance}`` (normalised, largest first) with Optuna's
    default evaluator (PED-ANOVA, no scikit-learn). Empty when fewer than
    :data:`MIN_TRIALS` trials have every objective or nothing was searched."""
    specs = parse_space(space)
    if not specs:
        return {}
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per added trial
    dists = {name: distribution(spec) for name, spec in specs.items()}
    study = optuna.create_study(
        directions=["maximize" if o.mode == "max" else "minimize" for o in objectives]
    )
    for t in trials:
        values = [t.objective(o.metric) for o in objectives]
        params = t.sampled
        if params is None or any(v is None for v in values):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                values=[float(v) for v in values if v is not None],
            )
        )
    if len(study.trials) < MIN_TRIALS:
        return {}
    out: dict[str, dict[str, float]] = {}
    for i, o in enumerate(objectives):
        # one objective: the study's direction applies; several: PED-ANOVA minimises the
        # target, so a maximised objective is negated
        sign = -1.0 if o.mode == "max" else 1.0
        target = None if len(objectives) == 1 else (lambda t, i=i, s=sign: s * t.values[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "few trials above the quantile" on small sweeps
            scores = optuna.importance.get_param_importances(study, target=target)
        out[o.metric] = dict(scores)
    return out

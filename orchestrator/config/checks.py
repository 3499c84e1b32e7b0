"""Cross-field checks of a validated sweep, run before anything starts.

Pydantic checks each section on its own; these rules span sections: ``space`` keys must
name real hyperparameters, conditions must name real parameters without cycles, batch
arithmetic must have at least one possible combination, the objective must be a metric the
task reports, and scheduler budgets must fit the epochs.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.config.batch import batch_problem
from orchestrator.config.conditions import find_cycle
from orchestrator.config.loss_weighting import weighting_errors
from orchestrator.config.metrics import train_metrics
from orchestrator.config.models import SEARCHABLE_SECTIONS, ParamSpec, SweepConfig
from orchestrator.config.start_points import start_point_problems
from orchestrator.config.task import get_task
from orchestrator.config.yaml_source import Source
from orchestrator.errors import ConfigError

#: Beyond this many discrete batch combinations the pre-check samples no further.
_MAX_COMBINATIONS = 10_000


def check_sweep(config: SweepConfig, source: Source) -> list[ConfigError]:
    """Every cross-field problem of ``config``; [] when it is sound."""
    errors: list[ConfigError] = []

    def error(path: tuple[str, ...], rule: str, *value: Any) -> None:
        file, line = source.where(path)
        errors.append(
            ConfigError(
                rule,
                file=file,
                line=line,
                key=".".join(path),
                value=value[0] if value else None,
                has_value=bool(value),
            )
        )

    for name, spec in config.space.items():
        for rule in _space_key_problems(config, name, spec):
            error(("space", name), rule)
        for parent, values in (spec.when or {}).items():
            where = ("space", name, "when", parent)
            if parent == name:
                error(where, "a parameter cannot be conditioned on itself")
            elif parent not in config.space:
                close = difflib.get_close_matches(parent, list(config.space), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                error(where, f"condition names a parameter that is not in space{hint}", parent)
            else:
                parent_spec = config.space[parent]
                bad = [v for v in values if not _can_take(parent_spec, v)]
                if bad:
                    error(where, f"{parent} can never take these values", bad)
    cycle = find_cycle(config.space)
    if cycle:
        error(("space", cycle[0], "when"), "circular condition: " + " -> ".join(cycle))

    errors.extend(_batch_errors(config, source))
    errors.extend(_objective_errors(config, source))
    for path, rule, value in config.task.sweep_problems(config):
        error(path, rule, value)
    errors.extend(weighting_errors(config, source))

    sampler = config.sweep.sampler
    for path, rule, value in sampler.space_problems(dict(config.space), config.sweep.num_samples):
        error(path, rule, value)
    if len(config.objectives) > 1 and not sampler.multi_objective:
        error(
            ("sweep", "sampler", "kind"),
            f"{sampler.kind} optimises one objective; objective lists "
            f"{len(config.objectives)} (use tpe, gp, nsga2 or nsga3)",
            sampler.kind,
        )
    for path, rule, value in start_point_problems(config):
        error(path, rule, value)

    for path, rule, value in config.stopping.scheduler.sweep_problems(config):
        error(path, rule, value)
    backend = config.backend
    if backend.kind == "deepspeed":
        if backend.zero_stage == 3 and config.train.ema is not None:
            error(
                ("train", "ema"),
                "an EMA of the weights needs whole parameters; ZeRO-3 partitions them "
                "(use zero_stage <= 2 or drop train.ema)",
                config.train.ema.model_dump(),
            )
        if config.batch.micro == "auto" or "auto" in (discrete_values(config, "micro") or []):
            error(
                ("batch", "micro"),
                "auto needs backend.kind: ddp; DeepSpeed fixes the micro-batch when its "
                "engine is built",
                "auto",
            )
    return errors


def known_metrics(config: SweepConfig) -> list[str]:
    """Every metric name a trial of this task reports."""
    chosen = config.task.reported_metrics()
    if chosen is not None:
        return chosen
    spec = get_task(config.task.kind)
    return [*spec.val_metrics, *train_metrics(spec.components)]


def _space_key_problems(config: SweepConfig, name: str, spec: ParamSpec) -> list[str]:
    parts = name.split(".")
    if parts[0] not in SEARCHABLE_SECTIONS or len(parts) < 2:
        return [
            "space keys are dotted paths into a searchable section "
            f"({', '.join(s + '.' for s in SEARCHABLE_SECTIONS)}), got {name!r}"
        ]
    section = getattr(config, parts[0])
    base = section.model_dump(by_alias=True)
    for value in _probe_values(spec):
        data = copy.deepcopy(base)
        problem = _set_path(data, parts[1:])
        if problem:
            return [problem]
        _put(data, parts[1:], value)
        try:
            type(section).model_validate(data)
        except ValidationError as exc:
            return [_describe(exc, type(section), parts, value)]
    return []


def _probe_values(spec: ParamSpec) -> list[Any]:
    if spec.choice is not None:
        return list(spec.choice)
    low, high = spec.bounds
    if spec.int_ is not None:
        return [int(low), int(high)]
    # the midpoint is not a whole number for most ranges, which exposes int-typed keys
    return [low, high, low + (high - low) * 0.37]


def _set_path(data: dict[str, Any], keys: list[str]) -> str | None:
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node, dict) or key not in node:
            return None  # let validation name the unknown key
        node = node[key]
        if not isinstance(node, dict):
            return f"{'.'.join(keys[: i + 1])} is a single value, not a section"
    return None


def _put(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _describe(exc: ValidationError, model: type[BaseModel], parts: list[str], value: Any) -> str:
    err = exc.errors(include_url=False)[0]
    if err["type"] == "extra_forbidden":
        from orchestrator.config.loader import known_keys

        loc = [str(p) for p in err["loc"]]
        known = known_keys(model, tuple(loc[:-1]))
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {parts[0]}.{'.'.join([*loc[:-1], close[0]])}?)" if close else ""
        return f"not a hyperparameter of section {parts[0]!r}{hint}"
    if err["type"] in ("int_from_float", "int_parsing"):
        return f"is an integer; search it with 'int: [low, high]' or 'choice', got {value!r}"
    return f"value {value!r} from this range is invalid: {err['msg']}"


def _can_take(spec: ParamSpec, value: Any) -> bool:
    if spec.choice is not None:
        return value in spec.choice
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    low, high = spec.bounds
    return low <= value <= high


def discrete_values(config: SweepConfig, key: str) -> list[int | str] | None:
    """All values ``batch.<key>`` can take, or None when there are too many to list."""
    spec = config.space.get(f"batch.{key}")
    if spec is None:
        return [getattr(config.batch, key)]
    if spec.choice is not None:
        return [v for v in spec.choice if isinstance(v, int) or v == "auto"]
    if spec.int_ is not None:
        low, high = spec.int_
        step = int(spec.step or 1)
        if (high - low) // step > _MAX_COMBINATIONS:
            return None
        return list(range(low, high + 1, step))
    return None


def _batch_errors(config: SweepConfig, source: Source) -> list[ConfigError]:
    effective = discrete_values(config, "effective")
    micro = discrete_values(config, "micro")
    if effective is None or micro is None or not effective or not micro:
        return []
    workers = config.resources.workers
    problems = [
        batch_problem(int(e), m, workers)
        for e, m in itertools.islice(itertools.product(effective, micro), _MAX_COMBINATIONS)
    ]
    if all(problems):
        searched = "batch.effective" in config.space or "batch.micro" in config.space
        path = ("space", "batch.micro") if "batch.micro" in config.space else ("batch",)
        file, line = source.where(path)
        rule = (
            "no combination of batch.effective, batch.micro and resources.workers is possible"
            if searched
            else "batch.effective, batch.micro and resources.workers cannot be combined"
        )
        return [ConfigError(f"{rule}: {problems[0]}", file=file, line=line, key=".".join(path))]
    return []


def _objective_errors(config: SweepConfig, source: Source) -> list[ConfigError]:
    known = known_metrics(config)
    weights_searched = any(k.startswith("loss.") for k in config.space)
    out: list[ConfigError] = []
    for i, obj in enumerate(config.objectives):
        path: tuple[str, ...] = (
            ("objective",) if len(config.objectives) == 1 else ("objective", f"[{i}]")
        )
        file, line = source.where(("objective",))
        key = ".".join(path) + ".metric"
        if obj.metric not in known:
            close = difflib.get_close_matches(obj.metric, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                ConfigError(
                    f"not a metric this task reports{hint}; known: {', '.join(known)}",
                    file=file,
                    line=line,
                    key=key,
                    value=obj.metric,
                    has_value=True,
                )
            )
        elif weights_searched and (
            obj.metric == "train/loss" or obj.metric.startswith("train/loss_")
        ):
            out.append(
                ConfigError(
                    "weighted losses are not comparable across trials whose loss settings are "
                    "searched; optimise a validation metric or an unweighted train/raw_* loss",
                    file=file,
                    line=line,
                    key=key,
                    value=obj.metric,
                    has_value=True,
                )
            )
    return out

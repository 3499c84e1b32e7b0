"""The sweep's ``space:`` compiled into an Optuna define-by-run function.

Ray's ``OptunaSearch`` calls :meth:`SearchSpace.__call__` with an Optuna trial for every new
Tune trial. Inactive conditional parameters are never suggested, so TPE (with
``group=True``) models each branch of the space separately. The returned constants carry
the derived batch plan, or the reason a sampled combination is impossible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.config.batch import AUTO, batch_problem, scaled_lr
from orchestrator.config.conditions import evaluation_order, is_active
from orchestrator.config.models import ParamSpec, SweepConfig

# keys of the trial config set by the orchestrator itself, not by the sampler
from orchestrator.reserved import (
    ACCUM,
    EFFECTIVE_BATCH,
    LR_SCALED,
    MICRO_BATCH,
    SKIP_REASON,
    WORLD_SIZE,
)

if TYPE_CHECKING:
    import optuna


class SearchSpace:
    """Samples a trial's parameters in condition order and derives the batch plan."""

    def __init__(self, config: SweepConfig) -> None:
        self.params: dict[str, ParamSpec] = dict(config.space)
        self.order = evaluation_order(self.params)
        self._batch = config.batch
        self._workers = config.resources.workers
        self._lr = config.optim.lr

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        sampled: dict[str, Any] = {}
        for name in self.order:
            spec = self.params[name]
            if is_active(spec, sampled):
                sampled[name] = suggest(trial, name, spec)
        return self.derived(sampled)

    def derived(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """Constants added to a trial's config: its batch plan, or why it must be skipped."""
        effective = int(sampled.get("batch.effective", self._batch.effective))
        raw_micro = sampled.get("batch.micro", self._batch.micro)
        micro: int | str = raw_micro if raw_micro == AUTO else int(raw_micro)
        problem = batch_problem(effective, micro, self._workers)
        if problem:
            return {SKIP_REASON: problem}
        rule = sampled.get("batch.lr_scaling", self._batch.lr_scaling)
        reference = sampled.get("batch.reference", self._batch.reference)
        lr = float(sampled.get("optim.lr", self._lr))
        return {
            EFFECTIVE_BATCH: effective,
            # with micro: auto the trial chooses; it reports the final micro-batch and
            # accumulation (orch.micro_batch / orch.accum in its results)
            MICRO_BATCH: micro,
            ACCUM: AUTO if micro == AUTO else effective // (int(micro) * self._workers),
            WORLD_SIZE: self._workers,
            LR_SCALED: scaled_lr(lr, effective, reference or self._batch.effective, rule),
        }


def suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    """One ``trial.suggest_*`` call for ``spec``."""
    if spec.choice is not None:
        return trial.suggest_categorical(name, spec.choice)
    low, high = spec.bounds
    if spec.int_ is not None:
        return trial.suggest_int(name, int(low), int(high), step=int(spec.step or 1), log=spec.log)
    return trial.suggest_float(name, low, high, step=spec.step, log=spec.log)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"weight": {"giou": 2}}}`` -> ``{"loss.weight.giou": 2}``: the dotted keys
    :func:`apply_params` takes (leaves only; lists and empty mappings are values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def apply_params(hyperparameters: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``hyperparameters`` with each dotted ``section.key`` of ``params`` set.

    Keys that are not sampled parameters (``orch.*``) are ignored.
    """
    import copy

    out = copy.deepcopy(hyperparameters)
    for dotted, value in params.items():
        section, *keys = dotted.split(".")
        if section not in out or not keys:
            continue
        node = out[section]
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out

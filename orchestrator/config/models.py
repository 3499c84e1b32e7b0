"""Pydantic models of the sweep file. Every model forbids unknown keys.

Section overview (see ``docs/sweep-file.md`` for every key):
``name, task, loss, optim, batch, train`` describe one trial; ``space`` says which of those
values are searched; ``objective, resources, backend, sweep, stopping, tracking`` describe the
sweep around the trials.
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.config.base import StrictModel
from orchestrator.config.divergence import DivergenceConfig
from orchestrator.config.lr_schedule import LrSchedule
from orchestrator.config.registry import KindRegistry
from orchestrator.config.task import LossConfig, TaskConfig

#: Top-level sections whose keys may be searched (``space:`` keys start with one of these).
SEARCHABLE_SECTIONS = ("loss", "optim", "batch", "train", "backend")

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

Scalar = str | int | float | bool | None


class ParamSpec(StrictModel):
    """One searched parameter: exactly one of ``float``, ``int`` or ``choice``."""

    float_: tuple[float, float] | None = Field(None, alias="float")
    int_: tuple[int, int] | None = Field(None, alias="int")
    choice: list[Scalar] | None = None
    log: bool = False
    step: float | None = None
    #: present only when every named parameter took one of the listed values
    when: dict[str, list[Scalar]] | None = None

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        given = [k for k in ("float", "int", "choice") if self.bounds_or_choice(k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of 'float: [low, high]', 'int: [low, high]' or "
                f"'choice: [...]', got {given or 'none'}"
            )
        if self.choice is not None:
            if not self.choice:
                raise ValueError("choice must list at least one value, got []")
            if len({repr(c) for c in self.choice}) != len(self.choice):
                raise ValueError(f"choice values must be unique, got {self.choice}")
            if self.log or self.step is not None:
                raise ValueError("log and step apply to float/int ranges, not to choice")
            return self
        low, high = self.bounds
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"bounds must be finite, got low={low} high={high}")
        if not low < high:
            raise ValueError(f"low must be < high, got low={low} high={high}")
        if self.log and low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={low}")
        if self.step is not None:
            if self.log:
                raise ValueError("step and log cannot be combined (Optuna forbids it)")
            if self.step <= 0:
                raise ValueError(f"step must be > 0, got step={self.step}")
            if self.int_ is not None and self.step != int(self.step):
                raise ValueError(f"step of an int range must be a whole number, got {self.step}")
        if self.when is not None:
            for parent, values in self.when.items():
                if not values:
                    raise ValueError(f"when.{parent} must list at least one value, got []")
        return self

    def bounds_or_choice(self, kind: str) -> Any:
        return {"float": self.float_, "int": self.int_, "choice": self.choice}[kind]

    @property
    def kind(self) -> Literal["float", "int", "choice"]:
        if self.float_ is not None:
            return "float"
        if self.int_ is not None:
            return "int"
        return "choice"

    @property
    def bounds(self) -> tuple[float, float]:
        pair = self.float_ if self.float_ is not None else self.int_
        assert pair is not None, "bounds of a choice parameter"
        return float(pair[0]), float(pair[1])

    def example(self) -> Any:
        """A representative value, used to check the key's path and type before sampling."""
        if self.choice is not None:
            return self.choice[0]
        if self.int_ is not None:
            return self.int_[0]
        return self.bounds[0]


class Objective(StrictModel):
    """A metric to optimise, e.g. ``{metric: val/map, mode: max}``."""

    metric: str = Field(min_length=1)
    mode: Literal["max", "min"]


class OptimConfig(StrictModel):
    """Optimiser of every trial."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-4, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    #: linear warm-up over this many optimizer steps
    warmup_steps: int = Field(0, ge=0)
    #: the learning rate over the epochs after warm-up (step, multistep, cosine)
    schedule: LrSchedule = Field(default_factory=LrSchedule)


class BatchConfig(StrictModel):
    """Samples per optimizer step (``effective``) and per forward pass on one worker (``micro``).

    Gradient accumulation is derived: ``effective / (micro * workers)``; it must be whole.
    ``micro: auto`` probes, in each trial before training, the largest micro-batch that fits
    in memory and divides ``effective / workers``.
    """

    effective: int = Field(16, ge=1, le=1_000_000)
    micro: int | Literal["auto"] = 4
    #: learning rate used = ``optim.lr`` x f(effective / reference): ``linear`` (Goyal et
    #: al.), ``sqrt`` (adaptive optimizers, Krizhevsky / Hoffer), or ``none``
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    #: the batch size ``optim.lr`` was tuned for; null = this section's ``effective``
    reference: int | None = Field(None, ge=1)

    @field_validator("micro")
    @classmethod
    def _micro_positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 1_000_000:
            raise ValueError("must be auto or a whole number in [1, 1000000]")
        return v


class EmaConfig(StrictModel):
    """An exponential moving average of the weights, evaluated instead of the raw weights.

    As in RT-DETR's ModelEMA the decay ramps up, ``decay x (1 - exp(-updates / warmup))``, so
    early on the average follows the weights instead of holding on to the random init.
    """

    decay: float = Field(0.999, gt=0, lt=1)
    #: optimizer steps over which the decay ramps up; 0 = full decay from the first step
    warmup: int = Field(2000, ge=0)


class CheckpointConfig(StrictModel):
    """Trial checkpoints through Ray Tune (docs/reliability.md): a trial Tune restarts after
    an infrastructure failure, or that ``orchestrate resume`` continues, starts after its
    last checkpoint instead of from scratch. An external command (``task.kind: command``)
    saves its own weights: its trial hands Tune only its progress, with every report, and
    ``every`` is the script's business (docs/external-command.md)."""

    #: checkpoint at the end of every this many epochs (never after the last)
    every: int = Field(1, ge=1)
    #: checkpoints Tune keeps per trial (CheckpointConfig.num_to_keep)
    keep: int = Field(2, ge=1)
    #: at the trial's end, each checkpoint Tune kept becomes an MLflow logged model of the
    #: trial's run (``checkpoint-epoch-<N>``, with that epoch's metrics), beside the final
    #: ``model``; its weights are uploaded to the run's artifact store
    log_models: bool = True


class TrainConfig(StrictModel):
    """The trial loop."""

    epochs: int = Field(8, ge=1, le=100_000)
    #: clip the global gradient norm to this value; null disables clipping
    grad_clip: float | None = Field(0.1, gt=0)
    seed: int = 0
    #: keep an EMA of the weights (RT-DETR uses decay 0.9999) and evaluate it; null = off
    ema: EmaConfig | None = None
    #: trial checkpoints; null = none (a restarted trial starts over)
    checkpoint: CheckpointConfig | None = Field(default_factory=CheckpointConfig)


class Resources(StrictModel):
    """Per-trial resources. ``workers > 1`` runs the trial as a Ray Train DDP job."""

    workers: int = Field(1, ge=1, le=4096)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    #: CPUs reserved by the trial's own process; when ``workers > 1`` it only coordinates
    #: the workers, so a fraction is enough (Ray rejects 0).
    trial_cpus: float | None = Field(None, gt=0)
    #: memory Ray reserves for each worker (GiB; Ray's ``memory`` resource); 0 = none
    memory_per_worker_gb: float = Field(0.0, ge=0)
    #: custom Ray resources each worker needs, e.g. ``{A100: 1}`` (a node started with
    #: ``ray start --resources='{"A100": 4}'``)
    custom_per_worker: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)


class BackendConfig(StrictModel):
    """How each trial trains: ``ddp`` (Accelerate over Ray Train's process group) or
    ``deepspeed`` (Accelerate's DeepSpeed plugin, ZeRO ``zero_stage``; needs a GPU and
    ``pip install -e .[deepspeed]``; see docs/batch.md)."""

    kind: Literal["ddp", "deepspeed"] = "ddp"
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: Literal["none", "cpu"] = "none"
    offload_params: Literal["none", "cpu"] = "none"
    #: a DeepSpeed JSON config (e.g. launch/deepspeed_zero2.json); its batch, accumulation
    #: and clipping keys are set from the sweep so the two cannot disagree
    deepspeed_config: str | None = None
    #: raise an out-of-memory error in every forward pass over more than this many samples:
    #: exercises the OOM back-off and ``micro: auto`` without a GPU (tests, demos)
    simulate_oom_above: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _offload_needs_deepspeed(self) -> BackendConfig:
        if self.kind != "deepspeed" and (
            self.offload_optimizer != "none" or self.offload_params != "none"
        ):
            raise ValueError("offload_optimizer/offload_params need kind: deepspeed")
        if self.offload_params != "none" and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage: 3 (ZeRO-3 partitions parameters)")
        return self


class FinalConfig(StrictModel):
    """After the search, train the ``top`` best configurations again with ``seeds`` new
    seeds each (``--repeat-top K --seeds N``): a single seed's winner on a small budget is
    often noise, so the summary ranks them by mean with a 95% confidence interval."""

    top: int = Field(3, ge=1, le=100)
    seeds: int = Field(3, ge=1, le=100)


class SamplerConfig(StrictModel):
    """Base of a ``sweep.sampler`` entry: the Optuna sampler that proposes each trial.

    A sampler is one module in :mod:`orchestrator.tuning.samplers` (or a plugin) with a
    subclass registered in :data:`SAMPLERS`; see docs/extending.md and docs/search.md.
    """

    kind: str
    seed: int = 0

    #: the sampler handles several objectives (``objective:`` a list)
    multi_objective: ClassVar[bool] = True
    #: the sampler reads Optuna constraints: a diverged trial is told as a COMPLETE,
    #: infeasible trial (``orch.diverged`` > 0) instead of PRUNED (docs/search.md)
    reads_constraints: ClassVar[bool] = False

    @abstractmethod
    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        """The ``optuna.samplers.BaseSampler``; ``concurrent``: several trials run at once."""

    def space_problems(
        self, space: dict[str, ParamSpec], num_samples: int
    ) -> list[tuple[tuple[str, ...], str, Any]]:
        """``(path, rule, value)`` of what this sampler cannot search in ``space``."""
        return []

    def start_point_problem(
        self, space: dict[str, ParamSpec], point: dict[str, Any]
    ) -> str | None:
        """Why this sampler cannot start from ``point`` (a ``sweep.start_from`` entry)."""
        return None


#: ``sweep.sampler.kind`` -> its config model (which builds the Optuna sampler)
SAMPLERS: KindRegistry[SamplerConfig] = KindRegistry(
    "sampler", SamplerConfig, discover=("orchestrator.tuning.samplers",), default="tpe"
)
if TYPE_CHECKING:
    Sampler = SamplerConfig
else:
    Sampler = SAMPLERS.field()


class WarmStart(StrictModel):
    """Where the trials of an earlier sweep are read from: exactly one of ``sweep_dir`` (its
    ``summary.json``) or ``experiment`` (MLflow child runs of that experiment, at
    ``tracking.uri``)."""

    sweep_dir: str | None = None
    experiment: str | None = None

    @model_validator(mode="after")
    def _one(self) -> WarmStart:
        if (self.sweep_dir is None) == (self.experiment is None):
            raise ValueError("give exactly one of sweep_dir or experiment")
        return self


class SweepSettings(StrictModel):
    """The search loop."""

    num_samples: int = Field(8, ge=1, le=1_000_000)
    max_concurrent: int = Field(2, ge=1)
    sampler: Sampler = Field(default_factory=SAMPLERS.default_factory())
    #: sweep directories (Ray Tune storage, data cache, summary) go under this folder
    dir: str = "sweeps"
    #: Ray cluster to join (``auto``, ``ray://...``); null joins ``$RAY_ADDRESS`` when set
    #: (as ``ray.init()`` does), else starts a local one
    ray_address: str | None = None
    #: logical CPUs of a local Ray; null sizes it so ``max_concurrent`` trials fit
    num_cpus: int | None = Field(None, ge=1)
    #: a local Ray starts its dashboard (needs ``orchestrator[cluster]``) and the sweep
    #: prints its address; off by default: the progress table and MLflow say what a sweep
    #: does, and the dashboard's processes cost a few CPU seconds at every start
    ray_dashboard: bool = False
    #: restarts of a trial after an infrastructure failure (OOM, lost worker or node,
    #: preemption); a deterministic error or a divergence is never retried
    max_retries: int = Field(2, ge=0)
    #: run the next trial in the Ray actor process the last one ended in: imports (torch,
    #: Accelerate, MLflow) and first-call costs are paid once per process instead of once
    #: per trial (docs/performance.md); false gives every trial a fresh process (a
    #: ``python`` task whose function keeps global state between calls)
    reuse_processes: bool = True
    #: the Optuna study's storage, for optuna-dashboard: null = ``optuna.journal`` in the
    #: sweep folder; an SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``) for a
    #: cluster, where the driver's sweep folder is not where you look
    optuna_storage: str | None = None

    @field_validator("optuna_storage")
    @classmethod
    def _storage_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(
                "must be an SQLAlchemy URL such as postgresql://user@host/db or "
                f"sqlite:////abs/path.db (null: a journal file in the sweep folder), got {value!r}"
            )
        return value

    #: configurations evaluated first, in order (e.g. the paper's defaults): ``space``
    #: keys -> values; a key left out is sampled
    start_from: list[dict[str, Scalar]] = Field(default_factory=list)
    #: seed the sampler with the trials of an earlier sweep (same space or a sub-space)
    warm_start: WarmStart | None = None
    #: how a trial stopped by a divergence rule is told to the sampler: ``constraint`` =
    #: infeasible (samplers that read constraints steer away; docs/search.md), ``pruned``
    divergence_as: Literal["constraint", "pruned"] = "constraint"


class SchedulerConfig(StrictModel):
    """Base of a ``stopping.scheduler`` entry: the Ray Tune scheduler that cuts trials.

    A scheduler is one module in :mod:`orchestrator.tuning.schedulers` (or a plugin) with a
    subclass registered in :data:`SCHEDULERS`; see docs/extending.md.
    """

    kind: str

    @abstractmethod
    def build(
        self, *, metric: str | None, mode: str | None, max_t: int, safe: bool = True
    ) -> TrialScheduler:
        """The Ray scheduler. Budgets are in reports (one per epoch); ``max_t`` is the last.

        ``metric``/``mode`` None: the sweep sets them later (``set_search_properties``).
        ``safe`` False: Ray's own class, without this project's NaN handling (replay
        compares the two).
        """

    def budget_problems(self, epochs: int) -> list[tuple[str, str, Any]]:
        """``(key, rule, value)`` of settings that cannot work with ``train.epochs``."""
        grace = getattr(self, "grace_period", None)
        if isinstance(grace, int) and grace > epochs:
            return [("grace_period", f"must be <= train.epochs ({epochs})", grace)]
        return []

    def sweep_problems(self, config: SweepConfig) -> list[tuple[tuple[str, ...], str, Any]]:
        """``(path, rule, value)`` of what cannot work with the rest of the sweep; by
        default the :meth:`budget_problems` under ``stopping.scheduler``. A scheduler that
        needs more of the sweep (PBT: checkpoints, the space) overrides it."""
        return [
            (("stopping", "scheduler", key), rule, value)
            for key, rule, value in self.budget_problems(config.train.epochs)
        ]

    def build_for(self, config: SweepConfig) -> TrialScheduler:
        """The scheduler of a sweep (metric and mode are set later by the sweep); one that
        needs more than :meth:`build`'s arguments (PBT: the space) overrides this."""
        return self.build(metric=None, mode=None, max_t=config.train.epochs)

    def mutated_keys(self, space: dict[str, ParamSpec]) -> list[str]:
        """The ``space`` keys whose values this scheduler changes while a trial runs (PBT,
        PB2); each trial then reports the values in force as ``hp/<key>`` metrics."""
        return []


#: ``stopping.scheduler.kind`` -> its config model (which builds the Ray scheduler)
SCHEDULERS: KindRegistry[SchedulerConfig] = KindRegistry(
    "scheduler", SchedulerConfig, discover=("orchestrator.tuning.schedulers",), default="asha"
)
if TYPE_CHECKING:
    Scheduler = SchedulerConfig
else:
    Scheduler = SCHEDULERS.field()


class StoppingConfig(StrictModel):
    scheduler: Scheduler = Field(default_factory=SCHEDULERS.default_factory())
    divergence: DivergenceConfig = Field(default_factory=DivergenceConfig)


class TrackingConfig(StrictModel):
    """MLflow. ``uri`` null -> ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the cwd."""

    uri: str | None = None
    #: experiment name; null -> the sweep's ``name``
    experiment: str | None = None
    enabled: bool = True
    #: at the end of a sweep, how long to wait for MLflow to take the buffered writes
    #: before leaving them in the sweep folder for ``orchestrate sync``
    flush_timeout_s: float = Field(default=60.0, ge=0)
    #: seconds between system-metric samples in each trial (CPU, memory, GPU: MLflow's
    #: System metrics tab); 0 turns sampling off
    system_metrics_s: float = Field(default=10.0, ge=0)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SweepConfig(StrictModel):
    """A whole sweep file."""

    name: str
    task: TaskConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    objective: Objective | list[Objective]
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    sweep: SweepSettings = Field(default_factory=SweepSettings)
    stopping: StoppingConfig = Field(default_factory=StoppingConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    #: seed repeats of the best configurations after the search; null = none
    final: FinalConfig | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "must be 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit"
            )
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: Objective | list[Objective]) -> Objective | list[Objective]:
        if isinstance(v, list):
            if not v:
                raise ValueError("objective list must not be empty")
            names = [o.metric for o in v]
            if len(set(names)) != len(names):
                raise ValueError(f"objective metrics must be distinct, got {names}")
            if len(v) == 1:
                return v[0]
        return v

    @property
    def objectives(self) -> list[Objective]:
        return self.objective if isinstance(self.objective, list) else [self.objective]

    @property
    def primary(self) -> Objective:
        """The objective schedulers compare trials by (the first one)."""
        return self.objectives[0]

    def hyperparameters(self) -> dict[str, Any]:
        """The searchable sections as plain data (what ``space:`` keys override)."""
        return {s: getattr(self, s).model_dump(by_alias=True) for s in SEARCHABLE_SECTIONS}

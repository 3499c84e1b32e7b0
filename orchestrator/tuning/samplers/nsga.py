"""``nsga2`` / ``nsga3``: Optuna's genetic algorithms for several objectives (NSGA-III
keeps a spread along reference directions: three objectives or more)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from orchestrator.config.models import SAMPLERS, ParamSpec, SamplerConfig


class _NSGASettings(SamplerConfig):
    #: trials per generation; the first generation is random
    population_size: int = Field(50, ge=2)
    #: probability of mutating each parameter; null = 1 / number of parameters
    mutation_prob: float | None = Field(None, ge=0, le=1)
    crossover_prob: float = Field(0.9, ge=0, le=1)
    swapping_prob: float = Field(0.5, ge=0, le=1)

    reads_constraints: ClassVar[bool] = True

    def _options(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "mutation_prob": self.mutation_prob,
            "crossover_prob": self.crossover_prob,
            "swapping_prob": self.swapping_prob,
            "seed": self.seed,
        }


@SAMPLERS.register
class NSGA2Sampler(_NSGASettings):
    """NSGA-II: non-dominated sorting with crowding distance; a diverged trial is
    infeasible, which constrained domination ranks below every feasible one. Parameters of
    a branch the parents did not take are drawn at random."""

    kind: Literal["nsga2"] = "nsga2"

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        return _picklable(optuna.samplers.NSGAIISampler)(**self._options())


@SAMPLERS.register
class NSGA3Sampler(_NSGASettings):
    """NSGA-III: NSGA-II with reference points instead of crowding distance."""

    kind: Literal["nsga3"] = "nsga3"
    #: reference points per objective axis (Das-Dennis divisions)
    dividing_parameter: int = Field(3, ge=1)

    def build(self, *, concurrent: bool, space: dict[str, ParamSpec]) -> Any:
        import optuna

        return _picklable(optuna.samplers.NSGAIIISampler)(
            **self._options(), dividing_parameter=self.dividing_parameter
        )


class _DropLock:
    """Drops the thread lock when pickled and makes a new one when unpickled: Ray pickles
    the searcher with the Tuner, and Optuna's genetic samplers hold a lock."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


def _picklable(cls: Any) -> Any:
    """The picklable subclass of ``cls`` (module-level, so pickle finds it)."""
    import optuna

    return {
        optuna.samplers.NSGAIISampler: _picklable_classes()[0],
        optuna.samplers.NSGAIIISampler: _picklable_classes()[1],
    }[cls]


#: built on first use (importing Optuna here would slow ``orchestrate validate``)
PicklableNSGAII: Any = None
PicklableNSGAIII: Any = None


def _picklable_classes() -> tuple[Any, Any]:
    global PicklableNSGAII, PicklableNSGAIII
    if PicklableNSGAII is None:
        import optuna

        PicklableNSGAII = type("PicklableNSGAII", (_DropLock, optuna.samplers.NSGAIISampler), {})
        PicklableNSGAIII = type(
            "PicklableNSGAIII", (_DropLock, optuna.samplers.NSGAIIISampler), {}
        )
        PicklableNSGAII.__module__ = PicklableNSGAIII.__module__ = __name__
    return PicklableNSGAII, PicklableNSGAIII

"""The sweep's Tune experiments, built (or restored) in one place.

A sweep has up to two experiments under ``<sweep dir>/ray``: the search (``tune``: Optuna
and the scheduler) and the seed repeats (``repeats``: a fixed list of configurations, no
scheduler). Both run the same trainable with the same divergence stopper, retries, kept
checkpoints, result files and MLflow tracking; :class:`TunerFactory` is the one place that says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from orchestrator.config.models import SweepConfig

#: the experiments' folder names under ``<sweep dir>/ray``
SEARCH = "tune"
REPEATS = "repeats"


class TunerFactory:
    """Builds a sweep's Tuners; ``tracker`` (or None) receives every trial's results."""

    def __init__(
        self,
        config: SweepConfig,
        trainable: Any,
        storage: str,
        tracker: Any,
        out: TextIO,
        *,
        datasets: list[dict[str, Any]] | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.config = config
        #: the train/val sets, logged as every trial's MLflow dataset inputs
        self.datasets = list(datasets or [])
        #: where ``sweep.warm_start: {experiment: ...}`` reads an earlier sweep's trials
        self.tracking_uri = tracking_uri
        self.trainable = trainable
        self.storage = storage
        self.tracker = tracker
        self.out = out

    def path(self, name: str) -> str:
        """Where the experiment ``name`` keeps its state."""
        return str(Path(self.storage) / name)

    def can_restore(self, name: str) -> bool:
        from ray import tune

        return bool(tune.Tuner.can_restore(self.path(name)))

    def restore(self, name: str) -> Any:
        """The experiment ``name`` as it was saved: finished trials stay finished, unfinished
        ones run again, errored ones stay errored. Its run config (callbacks, stopper,
        scheduler) comes back from the folder; the tracker inside it is this process's
        tracker of the same journal."""
        from ray import tune

        return tune.Tuner.restore(
            self.path(name),
            trainable=self.trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )

    def search(self, callbacks: list[Any] | None = None) -> Any:
        """The search: Optuna suggests ``sweep.num_samples`` trials, the scheduler cuts them.
        ``callbacks`` are extra Tune callbacks (e.g. a benchmark's timers)."""
        from orchestrator.search_space.space import SearchSpace
        from orchestrator.tuning.schedulers import build_scheduler
        from orchestrator.tuning.searcher import SweepSearch
        from orchestrator.tuning.study_storage import open_storage, study_name
        from orchestrator.tuning.warm_start import warm_trials

        config = self.config
        objectives = config.objectives
        metric: str | list[str] = [o.metric for o in objectives]
        mode: str | list[str] = [o.mode for o in objectives]
        if len(objectives) == 1:
            metric, mode = objectives[0].metric, objectives[0].mode
        sweep_dir = Path(self.storage).parent
        earlier, left_out = warm_trials(config, self.tracking_uri)
        if config.sweep.warm_start is not None:
            self.out.write(
                f"Warm start: {len(earlier)} earlier trial(s) in the study"
                + (f", {left_out} left out (errored, outside this space)" if left_out else "")
                + "\n"
            )
        search = SweepSearch(
            space=SearchSpace(config),
            metric=metric,
            mode=mode,
            sampler=config.sweep.sampler.build(
                concurrent=config.sweep.max_concurrent > 1, space=dict(config.space)
            ),
            start_from=config.sweep.start_from,
            warm_trials=earlier,
            divergence_as=config.sweep.divergence_as,
            reads_constraints=config.sweep.sampler.reads_constraints,
            # Optuna's own storage, for optuna-dashboard (resume restores this searcher,
            # storage included, from Tune's snapshot: one study per sweep)
            storage=open_storage(config.sweep.optuna_storage, sweep_dir),
            study_name=study_name(sweep_dir),
            tracker=self.tracker,
        )
        scheduler = build_scheduler(config)
        if config.stopping.scheduler.kind != "none":
            scheduler.set_search_properties(config.primary.metric, config.primary.mode)
        return self._build(
            SEARCH,
            search,
            config.sweep.num_samples,
            scheduler=scheduler,
            columns=list(config.space),
            callbacks=callbacks,
        )

    def repeats(self, configs: list[dict[str, Any]]) -> Any:
        """The seed repeats: each of ``configs`` once, in order, no scheduler."""
        from orchestrator.tuning.fixed_search import FixedConfigs

        primary = self.config.primary
        search = FixedConfigs(configs, primary.metric, primary.mode)
        return self._build(REPEATS, search, len(configs), scheduler=None, columns=[])

    def _build(
        self,
        name: str,
        search: Any,
        num_samples: int,
        *,
        scheduler: Any,
        columns: list[str],
        callbacks: list[Any] | None = None,
    ) -> Any:
        from ray import tune
        from ray.tune.logger import JsonLoggerCallback
        from ray.tune.search import ConcurrencyLimiter

        from orchestrator.divergence import build_rules
        from orchestrator.tuning.callbacks import FinishedMarks, ProgressTable, TrackingCallback
        from orchestrator.tuning.stopper import DivergenceStopper

        config = self.config
        primary = config.primary
        epochs = config.train.epochs
        # result.json per trial: what Tune's ResultGrid (and a later resume) reads back
        tune_callbacks: list[Any] = [
            FinishedMarks(),
            JsonLoggerCallback(),
            ProgressTable(primary.metric, columns, epochs, out=self.out),
        ]
        if self.tracker:
            kept_models = bool(config.train.checkpoint and config.train.checkpoint.log_models)
            tracking = TrackingCallback(
                self.tracker,
                epochs,
                config.hyperparameters(),
                self.datasets,
                config.task,
                checkpoint_models=kept_models,
            )
            tune_callbacks.insert(0, tracking)
        tune_callbacks += list(callbacks or [])
        # a population scheduler replaces a diverged member instead (docs/pbt.md)
        population = scheduler is not None and bool(
            config.stopping.scheduler.mutated_keys(dict(config.space))
        )
        stopper = DivergenceStopper(
            build_rules(config.stopping.divergence, (primary.metric, primary.mode)),
            replace_diverged=population,
        )
        # a population exists from the start (sweep.num_samples members); Ray's resources
        # (sized for sweep.max_concurrent trials) decide how many train at once, and the
        # population scheduler takes turns among them at its perturbation points
        concurrent = num_samples if population else config.sweep.max_concurrent
        kept = config.train.checkpoint
        checkpoints = tune.CheckpointConfig(num_to_keep=kept.keep if kept else None)
        return tune.Tuner(
            self.trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(search, max_concurrent=concurrent),
                scheduler=scheduler,
                num_samples=num_samples,
                reuse_actors=config.sweep.reuse_processes,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=self.storage,
                callbacks=tune_callbacks,
                stop=stopper,
                verbose=0,
                # only infrastructure failures reach Tune; the trainable ends deterministic ones
                failure_config=tune.FailureConfig(max_failures=config.sweep.max_retries),
                checkpoint_config=checkpoints,
            ),
        )

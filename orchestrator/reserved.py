"""Keys the orchestrator itself writes into trial configs, reports and MLflow tags (``orch.*``).

Every ``orch.*`` key the package writes or reads is named here, once (a unit test fails on an
``"orch.`` string literal anywhere else). Torch-, Ray- and MLflow-free, so the trial loop,
the Tune driver, the tracker and the replay tool share them without importing each other.
"""

#: what every reserved key starts with; config keys with it are not sampled parameters
PREFIX = "orch."

# -- why a trial stopped -------------------------------------------------------------------
#: the prefix of the stop keys below; a report's keys with it become tags of the child run
STOP_PREFIX = "orch.stop"
#: why a trial stopped before its last epoch: a rule code (``nonfinite``, ``spike``,
#: ``component_explosion:loss_giou``), ``scheduler``, ``error`` or ``skipped``
STOP_REASON = "orch.stop_reason"
#: one human sentence with the values that triggered the stop
STOP_DETAIL = "orch.stop_detail"
#: who stopped a trial the scheduler cut early: ``asha``, ``median``
STOPPED_BY = "orch.stopped_by"
#: the optimizer step the trial had reached when it was stopped
STOP_STEP = "orch.stop_step"
#: the exception type of a trial that failed deterministically (not retried)
ERROR_TYPE = "orch.error_type"
#: the last output lines of an external command that failed or was stopped for a timeout
STOP_OUTPUT = "orch.stop_output"
#: system-metric samples a trial reports since its previous report:
#: ``[[time_ms, {name: value}], ...]`` (``training/system_metrics.py``)
SYSTEM_SAMPLES = "orch.system_samples"

#: the last lines of the traceback of a trial that failed deterministically
STOP_TRACEBACK = "orch.stop_traceback"

# -- a trial's progress, in every report ---------------------------------------------------
#: the epoch the report ends (1-based)
EPOCH = "orch.epoch"
#: optimizer steps taken so far (the MLflow step of the report's metrics)
STEP = "orch.step"
#: samples seen so far (steps x effective batch)
SAMPLES_SEEN = "orch.samples_seen"
#: how many times an out-of-memory pass halved the micro-batch
OOM_BACKOFFS = "orch.oom_backoffs"
#: in every report of a trial restarted from a checkpoint: the epoch that checkpoint ended
RESTORED_FROM_EPOCH = "orch.restored_from_epoch"
#: which attempt of the trial made the report: 1, then 2 ... after each restart by Tune
ATTEMPT = "orch.attempt"

# -- population-based training (pbt, pb2; docs/pbt.md), in reports and as run tags ----------
#: the Tune trial id of the member whose checkpoint and values this trial last cloned
PBT_CLONED_FROM = "orch.pbt.cloned_from"
#: the epoch of the cloned checkpoint: the trial continued after it with the new values
PBT_EXPLOIT_EPOCH = "orch.pbt.exploit_epoch"
#: how many times the trial's line was cloned (its own exploits and its donors')
PBT_EXPLOITS = "orch.pbt.exploits"
#: the whole line, oldest first, as JSON: ``[[donor id, epoch, cloning trial id], ...]`` (a
#: clone inherits its donor's line)
PBT_LINEAGE = "orch.pbt.lineage"
#: a diverged member the population scheduler replaced by a clone: ``code: detail``
PBT_REPLACED = "orch.pbt.replaced"

# -- the batch plan, set in the trial config by the search space (and reported back) --------
EFFECTIVE_BATCH = "orch.effective_batch"
MICRO_BATCH = "orch.micro_batch"
ACCUM = "orch.accum"
WORLD_SIZE = "orch.world_size"
LR_SCALED = "orch.lr_scaled"
#: why a sampled combination cannot run (the trial is skipped)
SKIP_REASON = "orch.skip_reason"

# -- seed repeats ----------------------------------------------------------------------------
#: ``repeat`` on the extra child runs of a seed repeat
PHASE = "orch.phase"
#: the run id of the trial a seed repeat re-runs
REPEAT_OF = "orch.repeat_of"
#: the seed of a seed repeat
SEED = "orch.seed"
#: the name of the trial a seed repeat re-runs (in the repeat's trial config)
REPEAT_TRIAL = "orch.repeat_trial"

# -- MLflow run tags ---------------------------------------------------------------------------
#: ``sweep`` (the parent run) or ``trial`` (a child run)
KIND = "orch.kind"
#: the Tune trial id of a child run
TRIAL_ID = "orch.trial_id"
#: a logged model made from a kept checkpoint: the epoch it was taken after
CHECKPOINT_EPOCH = "orch.checkpoint_epoch"
#: the end state of a run: ``completed``, a stop reason, ``error``, ``interrupted``
STATUS = "orch.status"
SWEEP_DIR = "orch.sweep_dir"
SWEEP_FILE = "orch.sweep_file"
TASK = "orch.task"
NUM_TRIALS = "orch.num_trials"
NUM_STOPPED = "orch.num_stopped"
BEST_TRIAL = "orch.best_trial"
BEST_RUN_ID = "orch.best_run_id"
#: the model registry version of the sweep's best model (on the parent run)
REGISTERED_VERSION = "orch.registered_version"
#: the journal key of a run, so a replayed create finds the run it made before
JOURNAL_KEY = "orch.journal_key"
#: on a registered model version: the parent run and the trial it came from
SWEEP_RUN_ID = "orch.sweep_run_id"
TRIAL = "orch.trial"
#: on a promoted model version: who promoted it, why and when
PROMOTED_BY = "orch.promoted_by"
PROMOTED_REASON = "orch.promoted_reason"
PROMOTED_AT = "orch.promoted_at"
#: the sweep name in a Ray job's metadata
SWEEP = "orch.sweep"

# -- the Optuna study ------------------------------------------------------------------------
#: the Optuna constraint every trial carries (1: stopped by a divergence rule, infeasible)
DIVERGED = "orch.diverged"
#: user attr of a study trial copied from an earlier sweep (``sweep.warm_start``)
WARM_START = "orch.warm_start"

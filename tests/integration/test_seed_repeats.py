"""``final: {top, seeds}``: the best configuration trained again with new seeds, as child
runs of the same MLflow parent, ranked by mean in the summary (real Ray, Optuna, MLflow)."""

from __future__ import annotations

from tests.integration.cli_sweep import run_cli_sweep

SWEEP = """\
name: rep
task: {kind: regression, num_train: 64, num_val: 32}
batch: {effective: 16, micro: 16}
train: {epochs: 2, grad_clip: null}
objective: {metric: val/mse, mode: min}
space:
  optim.lr: {float: [1.0e-3, 1.0e-1], log: true}
sweep: {num_samples: 2, max_concurrent: 2, sampler: {kind: random, seed: 3}}
stopping: {scheduler: {kind: none}}
final: {top: 1, seeds: 2}
"""


def test_top_configuration_repeated_with_new_seeds(tmp_path):
    proc, summary, client = run_cli_sweep(tmp_path, SWEEP, "rep")
    assert "Seed repeats, ranked by mean val/mse" in proc.stdout
    best = summary["best"][0]
    (group,) = summary["repeats"]
    assert group["trial"] == best["trial"] and group["run_id"] == best["run_id"]
    assert group["seeds"] == [0, 1000, 2000] and len(group["values"]) == 3
    assert group["values"][0] == best["metrics"]["val/mse"]
    assert group["low"] < group["mean"] < group["high"]

    parent = summary["parent_run_id"]
    experiment = client.get_run(parent).info.experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    repeats = [r for r in children if r.data.tags.get("orch.phase") == "repeat"]
    assert len(children) == 4 and len(repeats) == 2
    for run in repeats:
        assert run.data.tags["orch.repeat_of"] == best["run_id"]
        assert run.data.params["train.seed"] == run.data.tags["orch.seed"]
        assert run.data.params["optim.lr"] == str(best["params"]["optim.lr"])
        assert run.info.run_name == f"{best['trial']}-seed{run.data.tags['orch.seed']}"
        assert run.info.status == "FINISHED"
    by_seed = {int(r.data.tags["orch.seed"]): r.data.metrics["val/mse"] for r in repeats}
    assert [by_seed[1000], by_seed[2000]] == group["values"][1:]

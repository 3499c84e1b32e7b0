"""A real sweep of search_spaces/smoke.yaml: real Ray (local cluster), real Optuna, real
Ray Train DDP workers, real MLflow store; checked by reading MLflow back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    db = work / "mlflow.db"
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "sweep",
        str(ROOT / "search_spaces/smoke.yaml"),
        "-o",
        f"sweep.dir={work / 'sweeps'}",
        "-o",
        f"tracking.uri=sqlite:///{db}",
    ]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sweep_dir,) = [p for p in (work / "sweeps").iterdir() if p.name.startswith("smoke-")]
    summary = json.loads((sweep_dir / "summary.json").read_text())
    return proc, summary, f"sqlite:///{db}"


def test_sweep_prints_table_summary_and_ui_command(smoke_run):
    proc, _, uri = smoke_run
    assert "trial-1" in proc.stdout and "trial-2" in proc.stdout
    assert "Best trial: trial-" in proc.stdout
    assert f"mlflow ui --backend-store-uri {uri}" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_mlflow_has_parent_and_one_child_per_trial_with_curves(smoke_run):
    _, summary, uri = smoke_run
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("orch.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("orch.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.run_id == summary["parent_run_id"]
    assert parent.info.status == "FINISHED"
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        params = child.data.params
        assert params["loss.cls"] in ("vfl", "ce")
        # all hyperparameters are logged; an inactive conditional one keeps the file's value
        if params["loss.cls"] == "vfl":
            assert params["loss.ce.bg_weight"] == "1.0"
        else:
            assert 1e-4 <= float(params["loss.ce.bg_weight"]) <= 1.0
        assert params["optim.name"] == "adamw" and params["train.epochs"] == "2"
        assert 1e-4 <= float(params["optim.lr"]) <= 1e-3
        # effective 8 = micro 2 x 2 workers x accumulation 2
        assert child.data.tags["orch.accum"] == "2"
        assert child.data.tags["orch.world_size"] == "2"
        for name in (
            "train/loss",
            "train/loss_cls",
            "train/raw_giou",
            "train/lr",
            "train/grad_norm",
            "val/map",
            "val/map_50",
        ):
            history = client.get_metric_history(child.info.run_id, name)
            assert len(history) == 2, name  # one point per epoch, 2 epochs
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "train/loss")]
        assert steps == [4, 8]  # 32 images / effective 8 = 4 optimizer steps per epoch
        # the weighted component is the raw one times the sampled weight
        giou = client.get_metric_history(child.info.run_id, "train/loss_giou")[-1].value
        raw = client.get_metric_history(child.info.run_id, "train/raw_giou")[-1].value
        assert giou == pytest.approx(raw * float(params["loss.weight.giou"]), rel=1e-5)


def test_reported_best_trial_is_the_best_in_mlflow(smoke_run):
    _, summary, uri = smoke_run
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    finals = {}
    for row in summary["trials"]:
        history = client.get_metric_history(row["run_id"], "val/map")
        finals[row["trial"]] = history[-1].value
    (best,) = summary["best"]
    assert finals[best["trial"]] == max(finals.values())
    parent = client.get_run(summary["parent_run_id"])
    assert parent.data.tags["orch.best_trial"] == best["trial"]
    assert parent.data.tags["orch.best_run_id"] == best["run_id"]


def test_trial_weights_are_logged_models_and_the_best_is_registered(smoke_run):
    _, summary, uri = smoke_run
    from mlflow import MlflowClient

    from tests.integration.trial_ends import checkpoint_models, model_files

    client = MlflowClient(tracking_uri=uri)
    ids = {}
    for row in summary["trials"]:
        ids[row["run_id"]], names = model_files(client, row["run_id"])
        assert {"model.pt", "batch_plan.json", "MLmodel"} <= names
        # 2 epochs, a checkpoint after each but the last (train.checkpoint's defaults):
        # epoch 1's weights are a logged model of the run too, with epoch 1's metrics
        assert sorted(checkpoint_models(client, row["run_id"])) == [1]
        run = client.get_run(row["run_id"])
        assert run.info.status == "FINISHED"
        contexts = {i.dataset.name: [t.value for t in i.tags] for i in run.inputs.dataset_inputs}
        assert contexts == {"synthetic-train": ["training"], "synthetic-val": ["validation"]}
    experiment = client.get_experiment_by_name("smoke")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # MLflow's own ranking of the trials' models agrees with the sweep's best trial
    ranked = client.search_logged_models(
        [experiment.experiment_id],
        filter_string="name = 'model'",
        order_by=[{"field_name": "metrics.val/map", "ascending": False}],
    )
    best = summary["best"][0]

    def model_map(model):
        return next(m.value for m in model.metrics if m.key == "val/map")

    values = [model_map(m) for m in ranked]
    assert values == sorted(values, reverse=True) and len(ranked) == len(summary["trials"])
    # a tiny synthetic sweep can tie on val/map (CI saw one): the best is among the top
    top = {m.source_run_id for m in ranked if model_map(m) == values[0]}
    assert best["run_id"] in top, (values, best)
    version = client.get_model_version_by_alias("smoke", "best")
    assert version.run_id == best["run_id"]
    assert version.source == f"models:/{ids[best['run_id']]}"
    assert version.tags["orch.trial"] == best["trial"]
    assert version.tags["orch.sweep_run_id"] == summary["parent_run_id"]
    parent_files = [a.path for a in client.list_artifacts(summary["parent_run_id"])]
    assert {"trials.csv", "summary.json", "sweep.yaml"} <= set(parent_files)


def test_compare_reads_the_real_sweep_back(smoke_run, tmp_path):
    """``orchestrate compare`` on what a real sweep wrote (resolved sweep file, the
    journal's runs, registered model): one row per trial, best value first."""
    import re

    from orchestrator.cli import main

    _, summary, uri = smoke_run
    out = tmp_path / "report"
    args = ["compare", "--sweep", summary["parent_run_id"], "--tracking-uri", uri]
    assert main([*args, "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert len(re.findall(r"<tr[^>]* data-run=", html)) == len(summary["trials"])
    for row in summary["trials"]:
        assert f"data-run='{row['run_id']}'" in html
    md = (out / "report.md").read_text()
    first = re.search(r"^\| 1 \| (trial-\d+) \| ([-\d.e+]+) \|", md, re.M)
    assert first, md
    finals = {r["trial"]: r["metrics"]["val/map"] for r in summary["trials"]}
    assert float(first.group(2)) == pytest.approx(max(finals.values()), abs=1e-4)


def test_optuna_study_is_in_the_sweep_folder_with_curves_and_run_ids(smoke_run):
    import optuna

    from orchestrator.tuning.study_storage import open_storage, study_name

    _, summary, _ = smoke_run
    sweep_dir = Path(summary["sweep_dir"])
    study = optuna.load_study(
        study_name=study_name(sweep_dir), storage=open_storage(None, sweep_dir)
    )
    rows = {r["run_id"]: r for r in summary["trials"]}
    assert len(study.trials) == len(rows) == 2
    for trial in study.trials:
        row = rows[trial.user_attrs["mlflow.run_id"]]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["orch.trial_id"] == row["trial_id"]
        # one intermediate value per epoch (Tune iteration), the last = the final objective
        assert sorted(trial.intermediate_values) == [1, 2]
        assert trial.intermediate_values[2] == pytest.approx(row["metrics"]["val/map"])
        assert trial.value == pytest.approx(row["metrics"]["val/map"])


@pytest.fixture(scope="module")
def dashboard(smoke_run):
    """``orchestrate dashboard`` on the smoke sweep's folder, as a user starts it; its URL
    once it answers (bounded wait)."""
    import time
    import urllib.request

    from tests.integration.local_ray_cluster import free_ports

    _, summary, _ = smoke_run
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "dashboard", summary["sweep_dir"],
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/studies", timeout=5):
                    break
            except OSError:
                time.sleep(1)
        assert proc.poll() is None, proc.communicate()[0]
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_serves_the_sweeps_study_on_localhost(smoke_run, dashboard):
    import urllib.request

    _, summary, _ = smoke_run
    with urllib.request.urlopen(f"{dashboard}/api/studies", timeout=30) as r:
        studies = json.loads(r.read().decode())["study_summaries"]  # optuna-dashboard's API
    assert [s["study_name"] for s in studies] == [Path(summary["sweep_dir"]).name]


def test_dashboard_pages_show_the_study_and_each_trials_run(smoke_run, dashboard, tmp_path):
    """What a user sees in optuna-dashboard (headless Chromium): the study's history,
    importance and timeline; each trial's intermediate values (one per epoch) and the MLflow
    run id that leads back to its child run. Screenshots are kept in the test's tmp folder."""
    from tests.integration.browser import chromium, page_text

    _, summary, _ = smoke_run
    name = Path(summary["sweep_dir"]).name
    run_ids = sorted(r["run_id"] for r in summary["trials"])
    with chromium(tmp_path / "profile", window="1600,1000") as browser:
        page_text(browser, f"{dashboard}/dashboard", [name, "Direction: MAXIMIZE"])
        text = page_text(
            browser, f"{dashboard}/dashboard/studies/0",
            [name, "History", "Hyperparameter Importance", "Timeline", "Best Trial (number="],
        )  # fmt: skip
        for param in ("optim.lr", "loss.weight.giou"):
            assert param in text, text
        browser.save_screenshot(str(tmp_path / "study.png"))
        shown = []
        for number in range(len(run_ids)):
            text = page_text(
                browser, f"{dashboard}/dashboard/studies/0/trials?numbers={number}",
                [f"Trial {number} (trial_id=", "Intermediate Values", "mlflow.run_id"],
            )  # fmt: skip
            assert f"{len(run_ids)} Trials" in text, text
            lines = text.splitlines()
            values = lines[lines.index("Intermediate Values") + 1 :]
            assert values[0].startswith("1 ") and values[1].startswith("2 "), values[:3]
            shown += [line.split()[-1] for line in lines if line.startswith("mlflow.run_id ")]
            browser.save_screenshot(str(tmp_path / f"trial-{number}.png"))
    assert sorted(shown) == run_ids

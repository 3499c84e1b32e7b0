"""What a user sees in MLflow's own UI (headless Chromium on ``mlflow server``): the trials'
logged models in the Models view, a trial's System metrics tab, the experiment in the
model-training layout. The store is written by the sweep's own tracker and journal writer
(two trials, weights, datasets, system samples), without Ray, so the page is what the
writer produces. Screenshots are kept in the test's tmp folder."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from orchestrator.reserved import SYSTEM_SAMPLES
from orchestrator.tasks.datasets import dataset_record
from orchestrator.tracking.mlflow_tracker import SweepTracker
from tests.integration.browser import chromium, page_text
from tests.integration.local_mlflow_stack import Service, free_ports, http_ok, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    images = root / "images"
    images.mkdir()
    (images / "000001.png").write_bytes(b"png")
    labels = root / "train.json"
    labels.write_text('{"000001.png": ["cat"]}')
    datasets = [
        dataset_record("synthetic-train", "training", labels, {"num_images": 1},
                       files=[labels], folders=[images]),
        dataset_record("synthetic-val", "validation", labels, {"num_images": 1},
                       files=[labels], folders=[images]),
    ]  # fmt: skip
    tracker = SweepTracker(uri, "uisweep", "uisweep", root / "sweep-1" / "tracking", fsync=False)
    tracker.start_sweep({"optim.lr": 0.1}, {})
    now = int(time.time() * 1000)
    for number, tid in enumerate(("t1", "t2"), start=1):
        tracker.start_trial(tid, f"trial-{number}", {"optim.lr": 0.01 * number})
        tracker.log_datasets(tid, datasets)
        for epoch in (1, 2):
            samples = [
                [now + (epoch * 3 + k) * 1000, {"cpu_utilization_percentage": 20.0 + k,
                                                  "process_rss_megabytes": 300.0 + k}]
                for k in range(3)
            ]  # fmt: skip
            result = {"val/map": 0.1 * epoch * number, "train/loss": 1.0 / epoch}
            tracker.log_result(tid, {**result, SYSTEM_SAMPLES: samples}, epoch * 4)
        weights = root / tid / "model"
        weights.mkdir(parents=True)
        (weights / "model.pt").write_bytes(b"weights")
        tracker.log_trial_model(tid, str(weights))
        tracker.end_trial(tid, "FINISHED", {"orch.status": "completed"})
    tracker.register_best("t2", "trial-2")
    tracker.end_sweep({"orch.num_trials": 2})
    assert tracker.flush(600), tracker.writer.last_error
    experiment_id = tracker.writer.state.experiment_id
    runs = tracker.trial_runs
    tracker.close()
    return root, uri, experiment_id, runs


@pytest.fixture(scope="module")
def ui(store):
    root, uri, *_ = store
    (port,) = free_ports(1)
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--backend-store-uri", uri,
    ]  # fmt: skip
    server = Service(cmd, dict(os.environ), root / "server.log")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 420, "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium"), window="1600,1000") as driver:
        yield driver


def test_models_view_lists_one_ready_logged_model_per_trial(store, ui, browser):
    root, _, experiment_id, _ = store
    url = f"{ui}/#/experiments/{experiment_id}/models?workflowType=machine_learning"
    text = page_text(browser, url, ["trial-1", "trial-2", "Ready"])
    lines = text.splitlines()
    assert lines.count("model") == 2 and lines.count("Ready") == 2, text
    browser.save_screenshot(str(root / "models.png"))


def test_a_trials_system_metrics_tab_charts_its_samples(store, ui, browser):
    root, _, experiment_id, runs = store
    url = (
        f"{ui}/#/experiments/{experiment_id}/runs/{runs['t2']}/system-metrics"
        "?workflowType=machine_learning"
    )
    # The chart titles come before the charts' legends: wait for the legend too.
    page_text(browser, url, ["System metrics", "cpu_utilization_percentage",
                              "process_rss_megabytes",
                              "trial-2 (system/cpu_utilization_percentage)"])  # fmt: skip
    browser.save_screenshot(str(root / "system-metrics.png"))


def test_the_experiment_opens_on_the_runs_table_in_model_training_layout(store, ui, browser):
    root, _, experiment_id, runs = store
    url = f"{ui}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    text = page_text(browser, url, ["Runs", "Models", "Dataset", "uisweep"])
    assert "Model training" in text
    # The trials are nested under the sweep's parent run, folded: unfold them as a user
    # does (the parent row's expander), then every trial row shows its datasets and model.
    browser.find_element("css selector", "[data-component-id*=runnamecellrenderer]").click()
    text = page_text(browser, url=None, wanted=["trial-1", "trial-2"])
    # The grid splits a row into pinned and scrolling parts, each keyed by the run id.
    cells: dict[str, list[str]] = {}
    for part in browser.find_elements("css selector", "[role=row][row-id]"):
        cells.setdefault(part.get_attribute("row-id"), []).append(part.text)
    for tid, name in (("t1", "trial-1"), ("t2", "trial-2")):
        row = "\n".join(cells.get(runs[tid], []))
        assert name in row and "synthetic-train (" in row and "Training" in row, cells
        shown = row.splitlines()
        # The Models column: trial-1's logged model by name; trial-2, registered as the
        # sweep's best, by its registered version first ("+1": one more model entry).
        if name == "trial-2":
            assert shown[-3:] == ["uisweep", "v1", "+1"], shown
        else:
            assert shown[-1] == "model", shown
    browser.save_screenshot(str(root / "runs.png"))

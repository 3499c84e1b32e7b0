"""``orchestrate compare`` on a sweep written into a real MLflow store (no training): the
Markdown numbers, bad input, promotion, the Pareto front, and the HTML report loaded in
headless Chromium (plots drawn with data, header clicks sort, labels do not collide)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.browser import chromium
from tests.integration.compare_store import trials_spec, write_sweep

pytestmark = pytest.mark.integration


def compare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``orchestrate compare ARGS`` in a new process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "compare", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def compare_here(capsys, *args: str) -> tuple[int, str]:
    """The same in this process (exit code, stderr): a new process per case would spend
    most of its time importing MLflow again."""
    from orchestrator.cli import main

    capsys.readouterr()
    rc = main(["compare", *args])
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    work = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    return work, uri, write_sweep(uri, work)


@pytest.fixture(scope="module")
def report(store):
    work, uri, _ = store
    out = work / "report"
    proc = compare(
        "--experiment", "cmp", "--tracking-uri", uri, "--out", str(out), "--top", "3",
        "--runs", "trial-1", "trial-7", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote {out / 'report.html'}" in proc.stdout
    return out


def test_markdown_ranks_top_trials_and_repeats_with_t_intervals(report):
    md = (report / "report.md").read_text()
    specs = [t for t in trials_spec() if not t.repeat_of]
    best3 = [t.name for t in sorted(specs, key=lambda t: -t.val_map)[:3]]
    top = re.findall(r"^\| (\d) \| (trial-\d+) \|", md, re.M)
    assert [name for _, name in top[:3]] == best3 == ["trial-1", "trial-2", "trial-5"]
    # trial-2 and its repeats: 0.38, 0.36, 0.31 -> mean 0.35; s = √(((.03)²+(.01)²+(.04)²)/2)
    # = 0.036056; t(0.975, 2) = 4.303; half = 4.303 · 0.036056 / √3 = 0.08957
    row = re.search(
        r"\| 2 \| trial-2 \| 3 \| ([\d.]+) \| \[([\d.]+), ([\d.]+)\] \| 0, 1, 2 \|", md
    )
    assert row, md
    mean, low, high = map(float, row.groups())
    assert mean == pytest.approx(0.35)
    assert low == pytest.approx(0.35 - 0.08957, abs=2e-4)
    assert high == pytest.approx(0.35 + 0.08957, abs=2e-4)
    assert "| trial-7 | nonfinite |" in md and "| trial-8 | spike |" in md
    assert "| optim.lr | 0.001 | 0.009 |" in md  # --runs trial-1 trial-7: the differing params


def test_bad_input_is_one_line_and_exit_2(store, capsys):
    work, uri, _ = store
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    empty = client.create_experiment("empty")
    parent = client.create_run(empty, tags={"orch.kind": "sweep"})
    client.log_artifact(parent.info.run_id, str(work / "sweep.yaml"))  # from write_sweep
    cases = {
        ("--experiment", "nope"): "no experiment named 'nope'",
        ("--sweep", "0123abcd"): "no MLflow run with id '0123abcd'",
        ("--sweep", parent.info.run_id): "has no trial runs",
        ("--experiment", "cmp", "--runs", "trial-1", "trial-99"): "'trial-99' is neither",
        ("--promote", "0123abcd"): "no MLflow run with id '0123abcd'",
        ("--tracking-uri", "sqlite:////nowhere/x.db", "--experiment", "cmp"): "no MLflow store",
    }
    for args, message in cases.items():
        rc, err = compare_here(capsys, "--tracking-uri", uri, *args)
        assert rc == 2 and message in err and err.startswith("error: "), (args, err)
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error, also exit 2
        compare_here(capsys, "--top", "0")
    assert exc.value.code == 2 and "must be a whole number >= 1" in capsys.readouterr().err
    # and as a user sees it: one line, no traceback
    proc = compare("--experiment", "nope", "--tracking-uri", uri, cwd=work)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_promote_moves_the_best_alias_with_who_and_why(store, capsys):
    _, uri, ids = store
    rc, err = compare_here(
        capsys, "--promote", ids["trial-2"], "--reason", "stable over seeds", "--tracking-uri", uri
    )
    assert rc == 0, err
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version_by_alias("cmp", "best")
    assert version.run_id == ids["trial-2"]
    assert version.tags["orch.promoted_reason"] == "stable over seeds"
    assert version.tags["orch.promoted_by"]
    assert version.tags["orch.trial"] == "trial-2"
    # a second promotion to another run re-points the alias and keeps both versions
    assert compare_here(capsys, "--promote", ids["trial-1"], "--tracking-uri", uri)[0] == 0
    assert client.get_model_version_by_alias("cmp", "best").run_id == ids["trial-1"]
    assert len(client.search_model_versions("name = 'cmp'")) == 2
    # a stopped trial logged no weights
    rc, err = compare_here(capsys, "--promote", ids["trial-7"], "--tracking-uri", uri)
    assert rc == 2 and "has no model artifact" in err


def test_two_objectives_get_a_pareto_front(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    objectives = [
        {"metric": "val/map", "mode": "max"},
        {"metric": "train/samples_per_s", "mode": "max"},
    ]
    write_sweep(uri, tmp_path, name="cmp2", objectives=objectives)
    out = tmp_path / "r"
    rc, err = compare_here(
        capsys, "--experiment", "cmp2", "--tracking-uri", uri, "--out", str(out)
    )
    assert rc == 0, err
    # front by hand: no other trial has both a higher map and a higher speed
    specs = [t for t in trials_spec() if not t.repeat_of]
    front = {
        a.name
        for a in specs
        if not any(
            b.val_map >= a.val_map
            and b.speed >= a.speed
            and (b.val_map, b.speed) != (a.val_map, a.speed)
            for b in specs
        )
    }
    assert front == {"trial-1", "trial-2", "trial-3"}
    md = (out / "report.md").read_text()
    section = md.split("## Pareto front")[1].split("##")[0]
    assert set(re.findall(r"\| (trial-\d+) \|", section)) == front
    html = (out / "report.html").read_text()
    assert html.count("class='point front'") == len(front)


# --- in a browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


def test_report_renders_in_chromium_and_header_clicks_sort(report, browser):
    from selenium.webdriver.common.by import By

    browser.get((report / "report.html").as_uri())
    css = browser.find_elements

    def drawn(selector: str) -> list:
        # rendered: the browser laid the element out with a real size
        return [
            e for e in css(By.CSS_SELECTOR, selector)
            if e.rect["width"] > 0 or e.rect["height"] > 0
        ]  # fmt: skip

    specs = [t for t in trials_spec() if not t.repeat_of]
    rows = css(By.CSS_SELECTOR, "#trials-table tbody tr")
    assert len(rows) == len(specs)
    # every curve chart has lines; 3 top + 2 stopped trials in the loss chart
    curves = css(By.CSS_SELECTOR, "#curves svg.chart")
    assert {c.get_attribute("data-chart") for c in curves} >= {"train/loss", "val/map"}
    for chart in curves:
        assert chart.find_elements(By.CSS_SELECTOR, "path.trace"), chart.get_attribute(
            "data-chart"
        )
    loss = browser.find_element(By.CSS_SELECTOR, "#curves svg[data-chart='train/loss']")
    assert len(loss.find_elements(By.CSS_SELECTOR, "path.trace")) == 3 + 2
    assert len(drawn("#parallel polyline.pc-line")) == len(specs)
    assert len(drawn("#importance rect.bar")) == 4  # the four searched parameters
    assert len(drawn("#repeats line.ci")) == 2
    assert len(drawn("#pair svg.chart path.trace")) >= 2

    # no axis name of the parallel-coordinates plot runs into its neighbour
    labels = sorted((e.rect for e in drawn("#parallel text.axis-label")), key=lambda r: r["x"])
    assert len(labels) == 5  # 4 parameters + the objective
    for a, b in itertools.pairwise(labels):
        assert a["x"] + a["width"] < b["x"], (a, b)
    # nothing smaller than 11 px
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('text, td, th, p'))"
        ".map(e => parseFloat(getComputedStyle(e).fontSize));"
    )
    assert min(sizes) >= 11

    col = [h.text for h in css(By.CSS_SELECTOR, "#trials-table th")].index("val/map")
    header = css(By.CSS_SELECTOR, "#trials-table th")[col]

    def first_column() -> list[str]:
        rows = css(By.CSS_SELECTOR, "#trials-table tbody tr")
        return [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]

    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert first_column() == [t.name for t in sorted(specs, key=lambda t: t.val_map)]
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert first_column() == [t.name for t in sorted(specs, key=lambda t: -t.val_map)]
    browser.find_elements(By.CSS_SELECTOR, "#trials-table th")[0].click()
    assert first_column() == sorted((t.name for t in specs), key=lambda n: int(n.split("-")[1]))

    shot = report / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000

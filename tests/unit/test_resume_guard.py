"""``orchestrate resume`` refuses a sweep.yaml edited since the sweep started (issue 19, part 3),
and a sweep with an unwritable folder or store stops in one line before Ray (part 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.config import load_sweep
from orchestrator.errors import OrchestratorError
from orchestrator.tuning.fingerprint import FINGERPRINT_FILE, check_resume, save_sweep

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _sweep_folder(tmp_path: Path, **overrides: object) -> Path:
    """What `orchestrate sweep` leaves before Ray runs: sweep.yaml, its fingerprint, ray/tune."""
    config = load_sweep(
        str(ROOT / "search_spaces" / "smoke.yaml"), [f"{k}={v}" for k, v in overrides.items()]
    )
    folder = tmp_path / "smoke-1"
    (folder / "ray" / "tune").mkdir(parents=True)
    save_sweep(config, folder)
    return folder


def _edit(folder: Path, section: str, key: str, value: object) -> None:
    data = yaml.safe_load((folder / "sweep.yaml").read_text())
    data.setdefault(section, {})[key] = value
    (folder / "sweep.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_an_unedited_sweep_file_matches_its_fingerprint(tmp_path, path):
    save_sweep(load_sweep(str(path)), tmp_path)
    assert check_resume(load_sweep(str(tmp_path / "sweep.yaml")), tmp_path)


def test_resume_refuses_the_issue_edits_with_each_changed_key(tmp_path):
    folder = _sweep_folder(tmp_path, **{"sweep.num_samples": 4, "train.epochs": 4})
    _edit(folder, "train", "epochs", 2)
    _edit(folder, "sweep", "num_samples", 6)
    _edit(folder, "tracking", "experiment", "renamed")
    out = _cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        f"error: {folder / 'sweep.yaml'}: changed since the sweep started, which resume "
        'cannot honour: sweep.num_samples (4 -> 6), tracking.experiment ("smoke" -> "renamed"), '
        "train.epochs (4 -> 2); undo the edit or start a new sweep\n"
    )
    assert not (folder / "tracking").exists()  # refused before anything ran


def test_a_safe_key_changes_only_when_named(tmp_path):
    folder = _sweep_folder(tmp_path)
    _edit(folder, "tracking", "flush_timeout_s", 5.0)
    out = _cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        f"error: {folder / 'sweep.yaml'}: changed since the sweep started, which resume "
        "cannot honour: tracking.flush_timeout_s (60.0 -> 5.0); undo the edit or start a new "
        "sweep; accept tracking.flush_timeout_s with --allow-change KEY\n"
    )
    edited = load_sweep(str(folder / "sweep.yaml"))
    assert check_resume(edited, folder, ["tracking.flush_timeout_s"])
    _edit(folder, "train", "epochs", 1)
    with pytest.raises(OrchestratorError, match=r"train\.epochs \(2 -> 1\)"):
        check_resume(load_sweep(str(folder / "sweep.yaml")), folder, ["tracking.flush_timeout_s"])


def test_allowing_a_key_resume_cannot_honour_is_refused(tmp_path):
    folder = _sweep_folder(tmp_path)
    out = _cli("resume", str(folder), "--allow-change", "sweep.num_samples", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        "error: --allow-change sweep.num_samples: resume cannot honour a change of this key; "
        "only tracking.flush_timeout_s, sweep.num_cpus, sweep.ray_address, sweep.ray_dashboard "
        "can change (start a new sweep for other changes)\n"
    )


def test_a_safe_key_a_later_version_added_is_no_edit_but_other_new_keys_are(tmp_path):
    folder = _sweep_folder(tmp_path)
    saved = json.loads((folder / FINGERPRINT_FILE).read_text())
    # a folder written before sweep.ray_dashboard existed: its fingerprint lacks the key
    del saved["config"]["sweep"]["ray_dashboard"]
    saved["sha256"] = "written-by-an-older-version"
    (folder / FINGERPRINT_FILE).write_text(json.dumps(saved))
    assert check_resume(load_sweep(str(folder / "sweep.yaml")), folder)
    # a key that changes the search is refused even when the old folder never had it
    del saved["config"]["sweep"]["num_samples"]
    (folder / FINGERPRINT_FILE).write_text(json.dumps(saved))
    with pytest.raises(OrchestratorError, match=r"sweep\.num_samples \(unset -> 2\)"):
        check_resume(load_sweep(str(folder / "sweep.yaml")), folder)


def test_a_folder_from_before_fingerprints_is_not_checked(tmp_path):
    folder = _sweep_folder(tmp_path)
    (folder / FINGERPRINT_FILE).unlink()
    assert not check_resume(load_sweep(str(folder / "sweep.yaml")), folder)


SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "sweep.dir=/proc/nope",
            "error: sweep.dir: cannot create /proc/nope: No such file or directory",
        ),
        (
            "tracking.uri=sqlite:////proc/nope/mlflow.db",
            "error: tracking.uri: the folder of the SQLite store /proc/nope/mlflow.db does not "
            "exist, got sqlite:////proc/nope/mlflow.db",
        ),
        (
            "tracking.uri=file:///proc/nope/mlruns",
            "error: tracking.uri: cannot create /proc/nope/mlruns: No such file or directory",
        ),
    ],
)
def test_an_unusable_location_is_one_line_before_ray(tmp_path, override, line):
    out = _cli("sweep", SMOKE, "-o", override, cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, line + "\n")
    assert out.stdout == ""  # no banner: nothing started


def test_a_sweep_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("")
    out = _cli("sweep", SMOKE, "-o", "sweep.dir=taken", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (
        2,
        f"error: sweep.dir: cannot create {tmp_path / 'taken'}: File exists\n",
    )


def test_the_default_store_in_an_unwritable_cwd_is_one_line(tmp_path):
    # /proc/self is a folder nobody (root included) can create a file in
    out = _cli("sweep", SMOKE, "-o", f"sweep.dir={tmp_path / 'sweeps'}", cwd=Path("/proc/self"))
    assert out.returncode == 2
    assert out.stderr.startswith(
        "error: tracking.uri (unset: the default store): cannot write in /proc/"
    )


def test_sweeps_started_in_the_same_second_get_their_own_folders(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.tuning.runner import make_sweep_dir

    config = load_sweep(SMOKE, [f"sweep.dir={tmp_path / 'sweeps'}"])
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: make_sweep_dir(config), range(8)))
    assert len(set(folders)) == 8
    assert all(f.is_dir() and f.parent == tmp_path / "sweeps" for f in folders)

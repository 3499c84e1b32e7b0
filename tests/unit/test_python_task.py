"""``task.kind: python`` without Ray: the entrypoint's reports, the divergence stop, the
trial it sees, and the clear errors around it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator.config.loader import validate_source
from orchestrator.config.yaml_source import parse_yaml
from orchestrator.errors import ConfigError, ConfigErrors
from orchestrator.reserved import STOP_DETAIL, STOP_REASON, STOP_STEP
from orchestrator.tasks.python.config import prepare_data
from orchestrator.training.python_trial import run_python_trial
from orchestrator.training.spec import TrialSpec

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fake_train"

SWEEP = f"""\
name: py
task:
  kind: python
  entrypoint: py_train:main
  path: [{FAKE}]
  metrics: [train/loss, val/score, train/world, train/rank_sum]
loss: {{gain: 2.0}}
optim: {{lr: 1.0e-3}}
train: {{epochs: 4}}
objective: {{metric: val/score, mode: max}}
space:
  optim.lr: {{float: [1.0e-4, 1.0e-2], log: true}}
tracking: {{enabled: false}}
"""


def _spec(tmp_path: Path, text: str = SWEEP, params: dict[str, Any] | None = None) -> TrialSpec:
    config = validate_source(parse_yaml(text, "py.yaml"))
    trial_dir = tmp_path / "trial"
    trial_dir.mkdir(exist_ok=True)
    return TrialSpec(
        sweep=config.model_dump(by_alias=True, mode="json"),
        params=params if params is not None else {"optim.lr": 2e-3},
        data_root="/nowhere",
        trial_id="t_1",
        trial_name="trainable_t_1",
        trial_dir=str(trial_dir),
    )


def test_each_report_is_one_epoch_with_the_trials_values(tmp_path):
    reports: list[dict[str, Any]] = []
    run_python_trial(_spec(tmp_path), reports.append)
    assert [r["orch.epoch"] for r in reports] == [1, 2, 3, 4]
    assert [r["orch.step"] for r in reports] == [1, 2, 3, 4]
    # the fake's formula with the sampled lr 2e-3 and the fixed loss.gain 2.0
    assert [r["train/loss"] for r in reports] == pytest.approx([2.0, 1.0, 2 / 3, 0.5])
    assert [r["val/score"] for r in reports] == [2.0, 4.0, 6.0, 8.0]
    assert all(r["train/world"] == 1.0 and STOP_REASON not in r for r in reports)


def test_a_divergence_rule_stops_the_loop_after_the_report_that_says_why(tmp_path):
    text = SWEEP.replace("loss: {gain: 2.0}", "loss: {gain: 2.0, nan_at: 2}")
    reports: list[dict[str, Any]] = []
    run_python_trial(_spec(tmp_path, text), reports.append)
    assert len(reports) == 2  # epochs 3 and 4 never ran
    assert math.isnan(reports[1]["train/loss"])
    assert reports[1][STOP_REASON] == "nonfinite" and reports[1][STOP_STEP] == 2
    assert "train/loss" in reports[1][STOP_DETAIL]
    lines = (tmp_path / "trial" / "rank0.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]


def test_the_trial_it_sees(tmp_path, monkeypatch):
    seen: list[Any] = []
    module = type(orchestrator)("seen_entry")
    module.main = lambda: (seen.append(orchestrator.get_trial()), orchestrator.report({}))  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "seen_entry", module)
    text = SWEEP.replace("py_train:main", "seen_entry:main")
    spec = _spec(tmp_path, text, {"optim.lr": 5e-3, "orch.effective_batch": 16})
    run_python_trial(spec, lambda r: None)
    (trial,) = seen
    assert (trial.id, trial.name, trial.dir) == ("t_1", "trainable_t_1", spec.trial_dir)
    assert trial.params == {"optim.lr": 5e-3}
    assert trial.config["optim.lr"] == 5e-3 and trial.config["loss.gain"] == 2.0
    assert trial.config["train.epochs"] == 4 and trial.epochs == 4
    assert (trial.rank, trial.world_size) == (0, 1)
    assert trial.checkpoint_dir == str(tmp_path / "trial" / "checkpoints")
    assert trial.resume_from is None
    # a second attempt of the same trial finds what the first one saved
    Path(trial.checkpoint_dir, "last.pt").write_text("x")
    run_python_trial(spec, lambda r: None)
    assert seen[1].resume_from == trial.checkpoint_dir


def test_a_short_run_is_exited_early_and_no_report_is_an_error(tmp_path, monkeypatch):
    module = type(orchestrator)("short_entry")
    module.two = lambda: [orchestrator.report({"val/score": 1.0}) for _ in range(2)]  # type: ignore[attr-defined]
    module.none = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "short_entry", module)
    reports: list[dict[str, Any]] = []
    run_python_trial(_spec(tmp_path, SWEEP.replace("py_train:main", "short_entry:two")),
                     reports.append)  # fmt: skip
    assert reports[-1][STOP_REASON] == "exited_early" and reports[-1]["orch.epoch"] == 2
    with pytest.raises(RuntimeError, match=r"returned without calling orchestrator\.report"):
        run_python_trial(_spec(tmp_path, SWEEP.replace("py_train:main", "short_entry:none")),
                         reports.append)  # fmt: skip


def test_report_checks_its_input_and_needs_a_trial(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match=r"inside a trial of a sweep with task\.kind: python"):
        orchestrator.report({"train/loss": 1.0})
    module = type(orchestrator)("bad_entry")
    module.name = lambda: orchestrator.report({"loss": 1.0})  # type: ignore[attr-defined]
    module.value = lambda: orchestrator.report({"train/loss": "high"})  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "bad_entry", module)
    with pytest.raises(ValueError, match="start with train/ or val/, got 'loss'"):
        run_python_trial(_spec(tmp_path, SWEEP.replace("py_train:main", "bad_entry:name")),
                         lambda r: None)  # fmt: skip
    with pytest.raises(TypeError, match="train/loss must be a number, got 'high'"):
        run_python_trial(_spec(tmp_path, SWEEP.replace("py_train:main", "bad_entry:value")),
                         lambda r: None)  # fmt: skip


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigErrors) as info:
        validate_source(parse_yaml(SWEEP.replace("py_train:main", "py_train.main"), "py.yaml"))
    assert "task.entrypoint: give package.module:function" in str(info.value)
    with pytest.raises(ConfigErrors) as info:
        validate_source(parse_yaml(SWEEP.replace("val/score, train/world", "score"), "py.yaml"))
    assert "metric names start with train/ or val/" in str(info.value)
    missing = validate_source(parse_yaml(SWEEP.replace("py_train:main", "no_such:main"), "p"))
    with pytest.raises(ConfigError, match=r"task\.entrypoint: cannot be imported .*No module"):
        prepare_data(missing.task, tmp_path)  # type: ignore[arg-type]


def test_the_example_trains_and_its_sweep_validates(tmp_path):
    from orchestrator.config import load_sweep

    example = ROOT / "examples" / "python_task" / "sweep.yaml"
    config = load_sweep(example, ["train.epochs=3", "tracking.enabled=false"])
    assert config.task.path == [str(Path.cwd() / "examples" / "python_task")]  # type: ignore[attr-defined]
    text = example.read_text().replace("[examples/python_task]", f"[{example.parent}]")
    reports: list[dict[str, Any]] = []
    spec = _spec(tmp_path, text.replace("epochs: 8", "epochs: 3"),
                 {"optim.lr": 1e-2, "loss.weight.l1": 0.0, "batch.effective": 32})  # fmt: skip
    run_python_trial(spec, reports.append)
    losses = [r["val/mse"] for r in reports]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert (tmp_path / "trial" / "checkpoints" / "last.pt").is_file()


def test_a_python_trials_params_leave_out_the_built_in_loops_backend():
    config = validate_source(parse_yaml(SWEEP, "py.yaml"))
    from orchestrator.search_space.space import flatten

    params = config.task.trial_params(flatten(config.hyperparameters()))
    assert params["optim.lr"] == 1e-3 and params["loss.gain"] == 2.0
    assert params["train.epochs"] == 4 and params["optim.name"] == "adamw"
    assert not [k for k in params if k.startswith("backend.")]


def test_import_orchestrator_and_validating_a_python_sweep_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, orchestrator\n"
        "from orchestrator.config import load_sweep\n"
        f"load_sweep({str(ROOT / 'examples' / 'python_task' / 'sweep.yaml')!r})\n"
        "print(sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Sweep-file loading: defaults, overrides, and error messages that point at the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import load_sweep
from orchestrator.errors import ConfigError, ConfigErrors


def errors_of(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_sweep(path, overrides)
    return [e.render() for e in info.value.errors]


def test_minimal_file_gets_documented_defaults(write_sweep):
    config = load_sweep(write_sweep())
    assert config.task.kind == "rtdetr"
    assert config.loss.cls == "vfl"
    assert (config.loss.weight.cls, config.loss.weight.bbox, config.loss.weight.giou) == (
        1.0,
        5.0,
        2.0,
    )
    assert config.batch.effective == 16 and config.batch.micro == 4
    assert config.stopping.scheduler.kind == "asha"
    assert config.primary.metric == "val/map"


def test_unknown_nested_key_names_file_line_key_and_suggestion(write_sweep):
    path = write_sweep("loss:\n  weight: {cls: 1, bbx: 2}\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:5: loss.weight.bbx: unknown key (did you mean 'bbox'?)")


def test_wrong_type_reports_value(write_sweep):
    (message,) = errors_of(write_sweep("sweep: {num_samples: many}\n"))
    assert "sweep.num_samples" in message and "'many'" in message and ":4:" in message


def test_several_errors_are_reported_together(write_sweep):
    messages = errors_of(write_sweep("optim: {lr: -1}\ntrain: {epochs: 0}\n"))
    assert len(messages) == 2
    assert any("optim.lr" in m and "greater than 0" in m for m in messages)
    assert any("train.epochs" in m for m in messages)


def test_unknown_task_kind_lists_known(write_sweep):
    path = write_sweep(
        base="name: t\ntask: {kind: yolo}\nobjective: {metric: val/map, mode: max}\n"
    )
    (message,) = errors_of(path)
    from orchestrator.tasks import TASKS

    known = ", ".join(sorted(TASKS))
    assert f"task.kind: unknown task kind; known: {known}, got 'yolo'" in message
    assert "rtdetr" in known and "command" in known


def test_duplicate_key_is_an_error(write_sweep):
    with pytest.raises(ConfigError, match=r":5: optim: duplicated key \(first at line 4\)"):
        load_sweep(write_sweep("optim: {lr: 0.1}\noptim: {lr: 0.2}\n"))


def test_invalid_yaml_and_empty_file_and_directory(tmp_path, write_sweep):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_sweep(write_sweep("space: [1,\n"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="file is empty"):
        load_sweep(empty)
    with pytest.raises(ConfigError, match="is a directory"):
        load_sweep(tmp_path)


def test_overrides_set_values_and_errors_name_the_override(write_sweep):
    path = write_sweep()
    config = load_sweep(
        path,
        [
            "sweep.num_samples=20",
            "resources.workers=2",
            "space.optim.lr={float: [1.0e-5, 1.0e-3], log: true}",
        ],
    )
    assert config.sweep.num_samples == 20
    assert config.resources.workers == 2
    assert config.space["optim.lr"].bounds == (1e-5, 1e-3)
    (message,) = errors_of(path, ["train.epochs=zero"])
    assert message.startswith("-o train.epochs=zero: train.epochs:")


def test_override_without_equals_is_rejected(write_sweep):
    with pytest.raises(ConfigError, match="key=value"):
        load_sweep(write_sweep(), ["train.epochs"])


def test_objective_must_be_a_reported_metric(write_sweep):
    base = "name: t\ntask: {kind: rtdetr}\nobjective: {metric: val/mAP, mode: max}\n"
    (message,) = errors_of(write_sweep(base=base))
    assert "did you mean 'val/map'?" in message


def test_weighted_loss_objective_rejected_when_loss_is_searched(write_sweep):
    base = "name: t\ntask: {kind: rtdetr}\nobjective: {metric: train/loss, mode: min}\n"
    (message,) = errors_of(write_sweep("space:\n  loss.weight.cls: {float: [1, 2]}\n", base=base))
    assert "weighted losses are not comparable" in message


def test_multi_objective_list(write_sweep):
    base = (
        "name: t\ntask: {kind: rtdetr}\nobjective:\n  - {metric: val/map, mode: max}\n"
        "  - {metric: train/samples_per_s, mode: max}\n"
    )
    config = load_sweep(write_sweep(base=base))
    assert [o.metric for o in config.objectives] == ["val/map", "train/samples_per_s"]
    assert config.primary.metric == "val/map"


def test_validate_cli_does_not_import_heavy_libraries():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; from orchestrator.cli import main; "
        f"rc = main(['validate', r'{root / 'search_spaces' / 'rtdetr.yaml'}']); "
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'transformers', 'optuna') "
        "if m in sys.modules]; assert rc == 0 and not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_cli_prints_one_line_errors_and_exits_2(write_sweep):
    path = write_sweep("train: {epochs: -3}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "train.epochs" in proc.stderr and "-3" in proc.stderr


def test_forecast_scheduler_and_lr_schedule_in_the_sweep_file(write_sweep):
    config = load_sweep(
        write_sweep(
            "optim: {schedule: {kind: multistep, milestones: [6], gamma: 0.1}}\n"
            "stopping: {scheduler: {kind: forecast, drop_gain: 0.5}}\n"
        )
    )
    s = config.stopping.scheduler
    assert s.kind == "forecast" and s.grace_period == 2 and s.reduction_factor == 3
    assert s.drop_gain == 0.5 and s.band == 0.8
    assert config.optim.schedule.milestones == [6]
    (message,) = errors_of(write_sweep("stopping: {scheduler: {kind: forecast, band: -1}}\n"))
    assert "stopping.scheduler.band" in message and "-1" in message
    (message,) = errors_of(write_sweep("optim: {schedule: {kind: multistep}}\n"))
    assert "optim.schedule" in message and "multistep needs milestones" in message

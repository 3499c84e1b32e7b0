"""Every file in tests/bad_inputs/ fails `orchestrate validate` with exactly one clear line:
file, key path and problem, no traceback, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

BAD = Path(__file__).resolve().parents[1] / "bad_inputs"

#: file -> (key path or "" for file-level problems, fragment of the problem)
EXPECTED = {
    "01_unknown_top_key.yaml": (":4: sweeps", "unknown key (did you mean 'sweep'?)"),
    "02_typo_nested_key.yaml": (":4: optim.lerning_rate", "unknown key; allowed: lr,"),
    "03_wrong_type.yaml": (":4: sweep.num_samples", "valid integer"),
    "04_empty_range.yaml": (":5: space.optim.lr", "low must be < high, got low=0.1 high=0.1"),
    "05_low_above_high.yaml": (":5: space.optim.lr", "low must be < high"),
    "06_log_nonpositive.yaml": (":5: space.optim.lr", "log scale needs low > 0"),
    "07_condition_unknown_param.yaml": (
        ":5: space.optim.lr.when.optim.nme",
        "condition names a parameter that is not in space",
    ),
    "08_circular_condition.yaml": (":5: space.optim.lr.when", "circular condition"),
    "09_impossible_batch.yaml": (":4: batch", "exceeds the effective batch 16"),
    "10_unknown_task.yaml": (":2: task.kind", "unknown task kind; known: command, "),
    "11_unknown_scheduler.yaml": (":4: stopping.scheduler", "'hyperband'"),
    "12_unknown_backend.yaml": (":4: backend.kind", "'ddp' or 'deepspeed', got 'fsdp'"),
    "13_missing_task.yaml": (": task", "required section is missing"),
    "14_missing_objective.yaml": (": objective", "required key is missing"),
    "15_invalid_yaml.yaml": (":5", "invalid YAML"),
    "16_duplicate_key.yaml": (":5: optim", "duplicated key (first at line 4)"),
    "17_huge_number.yaml": (":4: sweep.num_samples", "less than or equal to 1000000"),
    "18_non_utf8.yaml": ("", "not valid UTF-8"),
    "19_empty_file.yaml": ("", "file is empty"),
    "20_directory.yaml": ("", "is a directory"),
    "21_not_a_mapping.yaml": (":1", "top level must be a mapping"),
    "22_negative_epochs.yaml": (":4: train.epochs", "greater than or equal to 1, got -3"),
    "23_bad_mode.yaml": (":3: objective.mode", "'max' or 'min', got 'minimize'"),
    "24_unknown_objective_metric.yaml": (":3: objective.metric", "not a metric this task"),
    "25_space_key_outside_sections.yaml": (":5: space.resources.workers", "searchable section"),
    "26_space_two_kinds.yaml": (":5: space.optim.lr", "give exactly one of"),
    "27_unknown_divergence_rule.yaml": (
        ":4: stopping.divergence.spikes",
        "unknown key (did you mean 'spike'?)",
    ),
    "28_bad_divergence_threshold.yaml": (
        ":4: stopping.divergence.spike.factor",
        "greater than 1, got 0.5",
    ),
    "29_grace_above_epochs.yaml": (":5: stopping.scheduler.grace_period", "<= train.epochs"),
    "30_offload_without_deepspeed.yaml": (":4: backend", "need kind: deepspeed"),
    "31_bad_name.yaml": (":1: name", "got 'bad name/with slash'"),
    "32_micro_zero.yaml": (":4: batch.micro", "auto or a whole number"),
    "33_share_unknown_component.yaml": (
        ":5: loss.share.box",
        "not a loss component of task 'rtdetr' (did you mean 'bbox'?)",
    ),
    "34_share_without_target_share.yaml": (
        ":5: loss.share",
        "applies only with loss.weighting: target_share",
    ),
}


def test_every_bad_input_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_gives_one_clear_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    where, problem = EXPECTED[name]
    path = BAD / name
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"error: {path}{where}"), err
    assert problem in err, err


def test_cli_process_exit_code_and_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "sweep", str(BAD / "05_low_above_high.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1

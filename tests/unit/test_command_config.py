"""Validation of ``task.kind: command`` sweeps: torch-free, one clear line per problem."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.config import load_sweep
from orchestrator.errors import ConfigError, ConfigErrors
from orchestrator.tasks.command.config import prepare_data

BASE = """\
name: ext
task:
  kind: command
  command: [python, train.py, -u, "optimizer.lr={optim.lr}", "w={loss.weight.giou}"]
  metrics: {val/map: "test_coco_eval_bbox[0]", train/loss: train_loss}
loss: {weight: {giou: 2.0}}
objective: {metric: val/map, mode: max}
space:
  optim.lr: {float: [1.0e-5, 1.0e-3], log: true}
  loss.weight.giou: {float: [1.0, 4.0]}
"""


def _errors(write_sweep, extra: str = "", base: str = BASE, overrides=()) -> list[str]:
    path = write_sweep(extra, base=base)
    with pytest.raises(ConfigErrors) as info:
        load_sweep(path, list(overrides))
    return [e.render() for e in info.value.errors]


def test_a_valid_command_sweep_loads(write_sweep):
    config = load_sweep(write_sweep("", base=BASE))
    assert config.task.kind == "command"
    assert config.task.reported_metrics() == ["val/map", "train/loss"]


def test_unknown_placeholder_names_the_key_and_the_closest_one(write_sweep):
    cmd = 'task.command=[python, t.py, "{optim.lrr}", "{loss.weight.giou}"]'
    msg, unused = _errors(write_sweep, overrides=[cmd])
    assert "task.command: unknown placeholder {optim.lrr} (did you mean {optim.lr}?)" in msg
    assert "got '{optim.lrr}'" in msg
    # and so the searched optim.lr reaches no command
    assert "space.optim.lr: searched but never used" in unused


def test_a_searched_key_the_command_never_uses_is_an_error(write_sweep):
    (msg,) = _errors(write_sweep, "  loss.weight.bbox: {float: [1.0, 4.0]}\n")
    assert "space.loss.weight.bbox: searched but never used by task.command" in msg
    assert ":11:" in msg  # the line of that space key


def test_a_conditional_key_needs_a_fixed_value_for_the_trials_without_it(write_sweep):
    cmd = 'task.command=[t, "{optim.lr}", "{loss.weight.giou}", "{loss.cls}", "{loss.gamma}"]'
    space = (
        "  loss.cls: {choice: [vfl, focal]}\n"
        "  loss.gamma: {float: [1.0, 3.0], when: {loss.cls: [focal]}}\n"
    )
    (msg,) = _errors(write_sweep, space, overrides=[cmd])
    assert "space.loss.gamma: is conditional and has no fixed value" in msg
    config = load_sweep(write_sweep(space, base=BASE), [cmd, "loss.gamma=2.0"])
    assert config.space["loss.gamma"].when == {"loss.cls": ["focal"]}


def test_a_section_is_not_a_value(write_sweep):
    (msg,) = _errors(
        write_sweep,
        overrides=['task.command=[t, "{optim.lr}", "{loss.weight.giou}", "{loss.weight}"]'],
    )
    assert "{loss.weight} is a section, not a value" in msg and "{loss.weight.giou}" in msg


def test_trial_repo_and_env_placeholders_are_known(write_sweep):
    cmd = (
        '[t, "{optim.lr}", "{loss.weight.giou}", "{trial.dir}", "{trial.work_dir}", '
        '"{trial.id}", "{trial.name}", "{repo}/x", "{env.DATA}"]'
    )
    assert load_sweep(write_sweep("", base=BASE), [f"task.command={cmd}"]).task.kind == "command"


def test_stray_brace_and_string_without_shell(write_sweep):
    (msg,) = _errors(write_sweep, overrides=['task.command=[t, "lr={optim.lr"]'])
    assert "stray '{'" in msg and "write {{ or }} for a literal brace" in msg
    (msg,) = _errors(write_sweep, overrides=["task.command=python t.py {optim.lr}"])
    assert "give an argument list" in msg and "shell: true" in msg
    path = write_sweep("", base=BASE)
    shell = load_sweep(
        path,
        ['task.command="python t.py {optim.lr} {loss.weight.giou} | tee out"', "task.shell=true"],
    )
    assert shell.task.shell is True


def test_metric_names_fields_and_objective(write_sweep):
    (msg,) = _errors(write_sweep, overrides=["task.metrics={map: 'x[0]'}"])
    assert "metric names start with train/ or val/" in msg
    (msg,) = _errors(write_sweep, overrides=["task.metrics={val/map: 'x[a]'}"])
    assert "not a field expression: 'x[a]'" in msg
    (msg,) = _errors(write_sweep, overrides=["objective.metric=val/map_50"])
    assert "objective.metric: not a metric this task reports" in msg
    assert "known: val/map, train/loss" in msg


def test_stdout_regex_needs_named_groups_that_the_metrics_use(write_sweep):
    (msg,) = _errors(
        write_sweep, overrides=["task.log={kind: stdout_regex, pattern: 'loss (\\S+)'}"]
    )
    assert "needs named groups" in msg
    (msg,) = _errors(
        write_sweep, overrides=["task.log={kind: stdout_regex, pattern: 'loss=(?P<loss>\\S+)'}"]
    )
    assert "metrics.val/map: 'test_coco_eval_bbox[0]' is not a named group" in msg
    (msg,) = _errors(write_sweep, overrides=["task.log={kind: stdout_regex, pattern: '(?P<x'}"])
    assert "not a valid regular expression" in msg


def test_one_worker_and_free_form_loss_keys(write_sweep):
    (msg,) = _errors(write_sweep, overrides=["resources.workers=2"])
    assert "resources.workers: a command trial is one process" in msg
    (msg,) = _errors(write_sweep, overrides=["loss.weight.giou=[1, 2]"])
    assert "loss.weight.giou: give scalar values" in msg
    (msg,) = _errors(write_sweep, overrides=["loss.weighting=balance"])
    assert "loss.weighting: loss weighting is done by the built-in training loop" in msg
    (msg,) = _errors(write_sweep, overrides=["task.stall_timeout_s=0"])
    assert "task.stall_timeout_s" in msg


def test_prepare_data_checks_repo_and_environment(tmp_path, write_sweep, monkeypatch):
    cmd = '[t, "{optim.lr}", "{loss.weight.giou}", "{repo}/train.py", "{env.ORCH_TEST_DATA}"]'
    config = load_sweep(write_sweep("", base=BASE), [f"task.command={cmd}"])
    monkeypatch.delenv("ORCH_TEST_DATA", raising=False)
    with pytest.raises(ConfigError, match="uses \\{repo\\} but it is not set"):
        prepare_data(config.task, tmp_path)
    config.task.repo = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="environment variables that are not set"):
        prepare_data(config.task, tmp_path)
    monkeypatch.setenv("ORCH_TEST_DATA", "/data")
    with pytest.raises(ConfigError, match=r"task\.repo: is not a directory"):
        prepare_data(config.task, tmp_path)
    config.task.repo = str(tmp_path)
    prepare_data(config.task, tmp_path)


def test_validating_a_command_sweep_imports_no_torch(write_sweep):
    path = write_sweep("", base=BASE)
    code = (
        "import sys; from orchestrator.config import load_sweep; "
        f"load_sweep({str(path)!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_named_arguments_render_in_the_chosen_style(write_sweep):
    base = BASE.replace(
        "  metrics:",
        "  args: {c: cfg.yml, output-dir: out, amp: true, resume: false, tune: null, "
        "device: [0, 1], lr: '{optim.lr}'}\n"
        "  options_flag: --cfg-options\n"
        "  options: {model: {head: {w: '{loss.weight.giou}'}}, seed.x: 1.0e-05, b: '{{x}}'}\n"
        "  metrics:",
    )
    task = load_sweep(write_sweep("", base=base)).task
    assert task.argument_templates() == [
        "-c", "cfg.yml", "--output-dir", "out", "--amp", "--device", "0", "1",
        "--lr", "{optim.lr}",
        "--cfg-options", "model.head.w={loss.weight.giou}", "seed.x=1.0e-05", "b={{x}}",
    ]  # fmt: skip
    equals = load_sweep(write_sweep("", base=base), ["task.args_style=--key=value"]).task
    assert equals.argument_templates()[:4] == ["-c=cfg.yml", "--output-dir=out", "--amp",
                                               "--device=0 1"]  # fmt: skip


def test_an_override_reaches_a_named_argument_and_a_dotted_option(write_sweep):
    base = BASE.replace(
        "  metrics:",
        "  args: {config: a.yml}\n  options: {optimizer.lr: '{optim.lr}', epoches: 3}\n  metrics:",
    )
    task = load_sweep(
        write_sweep("", base=base), ["task.args.config=my.yml", "task.options.epoches=1"]
    ).task
    assert task.args == {"config": "my.yml"}
    assert task.options == {"optimizer.lr": "{optim.lr}", "epoches": 1}


def test_searched_keys_may_be_used_by_args_or_options_only(write_sweep):
    base = BASE.replace(
        '  command: [python, train.py, -u, "optimizer.lr={optim.lr}", "w={loss.weight.giou}"]',
        "  command: [python, train.py]\n  args: {lr: '{optim.lr}'}\n"
        "  options: {w: '{loss.weight.giou}'}",
    )
    load_sweep(write_sweep("", base=base))  # no 'searched but never used'
    (msg,) = _errors(write_sweep, base=base, overrides=["task.args={'--lr': 1}"])
    assert "task.args: an argument name is letters, digits, _ . -" in msg
    assert "got '--lr'" in msg


def test_the_shipped_rtdetr_file_renders_rtdetrs_command_line():
    from pathlib import Path

    from orchestrator.tasks.command.record import named_arguments

    path = Path(__file__).resolve().parents[2] / "search_spaces" / "rtdetr_external.yaml"
    task = load_sweep(path).task
    values = {"train.seed": 0, "trial.work_dir": "/w", "optim.lr": 1e-05, "train.epochs": 12,
              "batch.effective": 16, "loss.weight.vfl": 1.0, "loss.weight.bbox": 5.0,
              "loss.weight.giou": 2.0, "loss.focal.gamma": 2.0,
              "loss.focal.alpha": 0.75, "trial.resume_from": ""}  # fmt: skip
    argv = task.command + named_arguments(task, values)
    # a first attempt: nothing to resume, so no -r
    assert argv == [
        "python", "tools/train.py", "--config", "configs/rtdetrv2/rtdetrv2_r18vd_120e_coco.yml",
        "--seed", "0", "--output-dir", "/w", "-u", "optimizer.lr=1.0e-05", "epoches=12",
        "train_dataloader.total_batch_size=16", "RTDETRCriterionv2.weight_dict.loss_vfl=1.0",
        "RTDETRCriterionv2.weight_dict.loss_bbox=5.0",
        "RTDETRCriterionv2.weight_dict.loss_giou=2.0", "RTDETRCriterionv2.gamma=2.0",
        "RTDETRCriterionv2.alpha=0.75",
    ]  # fmt: skip
    # a restart resumes from RT-DETR's own checkpoint: -r PATH after the output dir
    again = task.command + named_arguments(task, {**values, "trial.resume_from": "/w/last.pth"})
    assert again == [*argv[:8], "-r", "/w/last.pth", *argv[8:]]
    assert task.resume_file == "last.pth"


def test_a_trials_params_are_what_its_command_uses(write_sweep):
    from orchestrator.search_space.space import flatten

    config = load_sweep(write_sweep("", base=BASE))
    values = flatten(config.hyperparameters())
    assert "optim.name" in values and "backend.kind" in values  # what the loop would use
    # BASE templates optim.lr and loss.weight.giou; train.epochs is the sweep's own
    assert config.task.trial_params(values) == {
        "optim.lr": 1e-4,
        "loss.weight.giou": 2.0,
        "sweep.train.epochs": 8,
    }
    templated = load_sweep(
        write_sweep("", base=BASE), ["task.options={epoches: '{train.epochs}'}"]
    ).task
    assert templated.trial_params(values) == {
        "optim.lr": 1e-4,
        "loss.weight.giou": 2.0,
        "train.epochs": 8,
    }


def test_an_option_given_both_dotted_and_nested_is_an_error(write_sweep):
    base = BASE.replace("  metrics:", "  options: {a.b: 1, a: {b: 2, c: 3}}\n  metrics:")
    (msg,) = _errors(write_sweep, base=base)
    assert "task.options: options: a.b given twice (dotted and nested)" in msg

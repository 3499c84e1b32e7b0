"""docs/external-command.md's RT-DETR CPU walk-through: its overrides, applied to the
shipped file, validate and reach the rendered command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from orchestrator.config import load_sweep
from orchestrator.search_space.space import flatten
from orchestrator.tasks.command.config import CommandTaskConfig
from orchestrator.tasks.command.record import named_arguments

ROOT = Path(__file__).resolve().parents[2]


def _walkthrough() -> list[str]:
    text = (ROOT / "docs" / "external-command.md").read_text()
    block = text.split("<!-- walkthrough:rtdetr-cpu", 1)[1].split("```bash\n", 1)[1]
    command = block.split("```", 1)[0].replace("\\\n", " ").replace("$HOME", "/home/u")
    words = shlex.split(command)
    assert words[:3] == ["orchestrate", "sweep", "search_spaces/rtdetr_external.yaml"]
    return [words[i + 1] for i, w in enumerate(words) if w == "-o"]


def test_the_rtdetr_cpu_walkthrough_validates_and_reaches_the_command_line():
    overrides = _walkthrough()
    config = load_sweep(ROOT / "search_spaces" / "rtdetr_external.yaml", overrides)
    task = config.task
    assert isinstance(task, CommandTaskConfig)
    assert config.resources.gpus_per_worker == 0 and config.train.epochs == 2
    values = {
        **flatten(config.hyperparameters()),
        "trial.work_dir": "/t/work",
        "trial.resume_from": "",
        "repo": task.repo,
    }
    argv = task.command + named_arguments(task, values)
    line = " ".join(argv)
    assert "--device cpu" in line and "--output-dir /t/work" in line
    # every task.options override is one key=value after -u, as RT-DETR's parse_cli reads it
    after_u = argv[argv.index("-u") + 1 :]
    for override in overrides:
        m = re.fullmatch(r"task\.options\.([^=]+)=(.*)", override)
        if m:
            assert f"{m.group(1)}={m.group(2)}" in after_u, override
    assert "PResNet.pretrained=False" in after_u and "epoches=2" in after_u
    assert "train_dataloader.total_batch_size=4" in after_u
    assert task.repo == "/home/u/RT-DETR/rtdetrv2_pytorch"

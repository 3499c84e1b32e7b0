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


def _walkthrough(marker: str = "rtdetr-cpu") -> list[str]:
    text = (ROOT / "docs" / "external-command.md").read_text()
    block = text.split(f"<!-- walkthrough:{marker}", 1)[1].split("```bash\n", 1)[1]
    command = block.split("```", 1)[0].replace("\\\n", " ").replace("$HOME", "/home/u")
    command = command.replace("$PWD", str(ROOT))
    lines = [ln for ln in command.splitlines() if ln.startswith("orchestrate sweep")]
    words = shlex.split(lines[0])
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


def test_the_real_rtdetr_run_in_the_docs_validates_and_uses_the_example_config(tmp_path):
    """The command of the documented real run: the trial runs the second environment's
    python on the example config; the example config and data generator are what the
    run used (r18 recipe, no download, 128 px, COCO ids 1 and 2)."""
    import json
    import runpy

    import yaml

    config = load_sweep(
        ROOT / "search_spaces" / "rtdetr_external.yaml", _walkthrough("rtdetr-run")
    )
    task = config.task
    assert isinstance(task, CommandTaskConfig)
    assert task.command == ["/home/u/rtv/bin/python", "tools/train.py"]
    values = {**flatten(config.hyperparameters()), "trial.work_dir": "/t/work",
              "trial.resume_from": "", "repo": task.repo}  # fmt: skip
    argv = named_arguments(task, values)
    example = ROOT / "examples" / "rtdetr_cpu" / "tiny_cpu.yml"
    assert argv[:2] == ["--config", str(example)] and "cpu" in argv
    assert "-r" not in argv  # nothing to resume on a first attempt
    cfg = yaml.safe_load(example.read_text())
    assert cfg["__include__"][0].endswith("configs/rtdetrv2/rtdetrv2_r18vd_120e_coco.yml")
    assert cfg["PResNet"]["pretrained"] is False and cfg["eval_spatial_size"] == [128, 128]
    runpy.run_path(str(ROOT / "examples" / "rtdetr_cpu" / "make_mini_coco.py"), run_name="x")[
        "main"
    ](tmp_path)
    for split, count in (("train", 16), ("val", 8)):
        coco = json.loads((tmp_path / f"{split}.json").read_text())
        assert len(coco["images"]) == count == len(list((tmp_path / split).iterdir()))
        ids = {i["id"] for i in coco["images"]}
        assert {a["image_id"] for a in coco["annotations"]} <= ids
        assert {a["category_id"] for a in coco["annotations"]} == {1, 2}

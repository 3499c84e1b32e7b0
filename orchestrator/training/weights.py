"""A trial's weights on disk, written *before* each report that may be its last.

Ray stops a trial inside the report the scheduler (ASHA at ``max_t`` or at a rung, the
median rule) or a stopper decides on: the trial's thread never runs another line. So the
weights a report describes are on disk before that report is sent, and the MLflow model
flavour is added before the report the trial knows is its last (its final epoch, or a
divergence stop). A trial cut by the scheduler keeps the ``model.pt`` of its last report.

The folder (``<trial dir>/model``) holds ``model.pt`` (the state dict, the EMA's when on),
``batch_plan.json`` (the split the trial ended with) and, for a trial that ended itself in
a sweep tracked in MLflow, an MLflow ``pytorch`` model (``MLmodel``, ``data/`` ...), see
:mod:`.export`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from orchestrator.config.batch import BatchPlan
from orchestrator.training.checkpoint_layout import WEIGHTS_FILE

PLAN_FILE = "batch_plan.json"


class TrialWeights:
    """Writes one trial's weights into ``out``; every write replaces the previous one."""

    def __init__(
        self, out: Path, task: Any, val_loader: Any, *, mlflow_model: bool = True
    ) -> None:
        self.out = out
        self.task = task
        self.val_loader = val_loader
        self.mlflow_model = mlflow_model

    def save(
        self, state: dict[str, Any], plan: BatchPlan, backoffs: list[str], *, final: bool
    ) -> None:
        """Write ``state`` and ``plan``; with ``final``, also the MLflow model flavour
        (unless ``mlflow_model`` is off: a sweep without MLflow tracking)."""
        self.out.mkdir(parents=True, exist_ok=True)
        cpu = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
        with tempfile.TemporaryDirectory(prefix="orch-weights-") as staging:
            # written outside the trial folder, then moved in: Ray copies that folder to
            # the sweep's storage now and then, never deletes there, and a kill mid-write
            # must leave the previous report's weights whole
            tmp = Path(staging)
            torch.save(cpu, tmp / WEIGHTS_FILE)
            info = {"micro": plan.micro, "accum": plan.accum, "effective": plan.effective}
            (tmp / PLAN_FILE).write_text(json.dumps(info | {"oom_backoffs": backoffs}))
            _move_into(tmp, self.out)
        if final and self.mlflow_model:
            self._flavour(cpu)

    def _flavour(self, state: dict[str, Any]) -> None:
        from orchestrator.training.export import PT2, first_tensor, save_mlflow_model

        # rebuilt from the state dict: the trained module may be wrapped or sharded
        module = self.task.build_model()
        module.load_state_dict(state)
        example = first_tensor(next(iter(self.val_loader), None))
        with tempfile.TemporaryDirectory(prefix="orch-flavour-") as staging:
            folder = Path(staging) / "model"  # MLflow writes a folder that must not exist
            serialization = getattr(self.task, "mlflow_format", PT2)
            if save_mlflow_model(module, example, folder, serialization):
                _move_into(folder, self.out)


def _move_into(source: Path, out: Path) -> None:
    """Move every entry of ``source`` into ``out``, replacing what is there (a rename
    when both are on one filesystem)."""
    for entry in list(source.iterdir()):
        target = out / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        shutil.move(str(entry), str(target))

"""training/weights.py: the weights a report describes are on disk before the report."""

from __future__ import annotations

import json

import torch

from orchestrator.config.batch import plan_batch
from orchestrator.training.weights import TrialWeights


class _LinearTask:
    def build_model(self) -> torch.nn.Module:
        return torch.nn.Linear(3, 2)


def test_every_save_replaces_the_weights_and_only_the_final_one_adds_the_flavour(tmp_path):
    out = tmp_path / "model"
    module = torch.nn.Linear(3, 2)
    loader = [torch.ones(4, 3)]
    weights = TrialWeights(out, _LinearTask(), loader)
    plan = plan_batch(8, 2, 1)

    weights.save(module.state_dict(), plan, [], final=False)
    assert sorted(p.name for p in out.iterdir()) == ["batch_plan.json", "model.pt"]
    with torch.no_grad():
        module.weight.add_(1.0)
    weights.save(module.state_dict(), plan_batch(8, 1, 1), ["2->1"], final=True)

    saved = torch.load(out / "model.pt")
    assert torch.equal(saved["weight"], module.weight.detach())
    assert json.loads((out / "batch_plan.json").read_text()) == {
        "micro": 1, "accum": 8, "effective": 8, "oom_backoffs": ["2->1"]
    }  # fmt: skip
    assert (out / "MLmodel").is_file()
    # nothing half-written is left beside the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    import mlflow.pytorch

    loaded = mlflow.pytorch.load_model(str(out))
    x = torch.ones(1, 3)
    assert torch.allclose(loaded(x), module(x))


def test_a_sweep_without_mlflow_writes_no_mlflow_model(tmp_path):
    out = tmp_path / "model"
    module = torch.nn.Linear(3, 2)
    weights = TrialWeights(out, _LinearTask(), [torch.ones(4, 3)], mlflow_model=False)
    weights.save(module.state_dict(), plan_batch(8, 2, 1), [], final=True)
    assert sorted(p.name for p in out.iterdir()) == ["batch_plan.json", "model.pt"]

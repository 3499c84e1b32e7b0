"""Your own training loop as a sweep trial: a small MLP regressor, plain PyTorch.

The sweep (``sweep.yaml``) calls :func:`main` in every training process of a trial: once
for ``resources.workers: 1``, in each Ray Train worker (DDP) otherwise. The function reads
its hyperparameters with ``orchestrator.get_trial()`` and reports each epoch with
``orchestrator.report()``; everything else (sampling, schedulers, divergence stops, MLflow)
is the sweep's.
"""

import os

import torch
from torch import nn

import orchestrator


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``y = sin(3 x0) + 0.5 x1^2 + noise``: generated, so the example needs no download."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 2 - 1
    y = torch.sin(3 * x[:, :1]) + 0.5 * x[:, 1:] ** 2 + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


def main() -> None:
    trial = orchestrator.get_trial()
    cfg = trial.config  # every hyperparameter, fixed or sampled: cfg["optim.lr"] ...
    torch.manual_seed(cfg["train.seed"])
    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 1))
    if trial.world_size > 1:  # a DDP worker: Ray Train set up the process group
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["optim.lr"])
    checkpoint = os.path.join(trial.checkpoint_dir, "last.pt")
    start = 0
    if trial.resume_from:  # an earlier attempt of this trial saved one
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"]
    x, y = make_data(512, seed=0)
    x_val, y_val = make_data(128, seed=1)
    # each rank takes its share of every batch of batch.effective samples
    micro = cfg["batch.effective"] // trial.world_size
    w_mse, w_l1 = cfg["loss.weight.mse"], cfg["loss.weight.l1"]
    for epoch in range(start, trial.epochs):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        steps = 0
        for i in range(0, len(x), cfg["batch.effective"]):
            idx = perm[i : i + cfg["batch.effective"]][
                trial.rank * micro : (trial.rank + 1) * micro
            ]
            pred = model(x[idx])
            loss = (
                w_mse * nn.functional.mse_loss(pred, y[idx]) + w_l1 * (pred - y[idx]).abs().mean()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        with torch.no_grad():
            val_mse = nn.functional.mse_loss(model(x_val), y_val).item()
        if trial.rank == 0:
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1},
                checkpoint,
            )
        orchestrator.report({"train/loss": total / steps, "val/mse": val_mse})

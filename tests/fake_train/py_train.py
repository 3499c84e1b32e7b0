"""A ``task.kind: python`` entrypoint for tests: no model, values by a fixed formula.

Epoch ``e`` (1-based) reports ``train/loss = lr * 1000 / e`` and ``val/score = e *
loss.gain``; with ``loss.nan_at: N`` the loss is NaN from epoch N on. Under DDP the ranks
all-reduce their rank numbers, so ``train/rank_sum`` proves every worker took part, and
each rank appends its reports to ``<trial dir>/rank<r>.jsonl``.
"""

import json
import os

import orchestrator


def main():
    trial = orchestrator.get_trial()
    cfg = trial.config
    rank_sum = float(trial.rank)
    if trial.world_size > 1:
        import torch
        import torch.distributed as dist

        t = torch.tensor([rank_sum])
        dist.all_reduce(t)
        rank_sum = float(t.item())
    nan_at = cfg.get("loss.nan_at")
    for e in range(1, trial.epochs + 1):
        loss = cfg["optim.lr"] * 1000 / e
        if nan_at is not None and e >= nan_at:
            loss = float("nan")
        metrics = {
            "train/loss": loss,
            "val/score": e * cfg["loss.gain"],
            "train/world": trial.world_size,
            "train/rank_sum": rank_sum,
        }
        with open(os.path.join(trial.dir, f"rank{trial.rank}.jsonl"), "a") as f:
            f.write(json.dumps({"epoch": e, **metrics}) + "\n")
        orchestrator.report(metrics)

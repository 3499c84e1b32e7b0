"""DETR-like learning curves with slow starters and late-crossing LR-drop schedules.

Run: python bench/curves/generate_detr.py --seed 0 --out bench/curves/detr_tune.jsonl
     python bench/curves/generate_detr.py --seed 1 --out bench/curves/detr_holdout.jsonl

Seed 0 is the set the forecast scheduler's defaults were chosen on; seed 1 is only reported
on (``bench/stopping.py``). Every trial trains ``EPOCHS`` epochs under the learning-rate
schedule in its ``params`` (``optim.schedule.*``, as a sweep would sample it: a x0.1
multistep drop at epoch 27, or cosine), so the forecast scheduler can read it.

Families (label, share):

* ``steady`` (healthy): rises from the first epoch and saturates.
* ``slow_starter`` (healthy): mAP ~ 0 for 3-8 epochs (warm-up, Hungarian matching
  settling), then a sigmoid rise, often to the top.
* ``late_crosser`` (healthy): a high learning rate; its plateau is lower and noisier than
  the steady runs' until the LR drops, then it gains the most (the ranking crosses).
* ``noisy`` (healthy): a small validation set: multiplicative noise of 20-35% on a
  modest mAP.
* ``dead`` (diverged, onset 0): never learns; the loss stays at its start.
* ``nan`` (diverged): NaN loss from some epoch on.
* ``collapse`` (diverged): learns, then mAP decays to 0 while the loss creeps up.

Underneath, the pre-drop plateau is ``Q x (1 - 0.3 lr)`` and the final one
``plateau x (1 + 0.6 lr)`` after the full drop for a relative learning rate ``lr`` in [0.1, 1]: the
same quality ``Q`` ends higher with a high LR, but looks worse before the drop.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

EPOCHS = 36
MILESTONE = 27

FAMILIES: dict[str, tuple[str, int]] = {
    "steady": ("healthy", 36),
    "slow_starter": ("healthy", 16),
    "late_crosser": ("healthy", 16),
    "noisy": ("healthy", 10),
    "dead": ("diverged", 8),
    "nan": ("diverged", 7),
    "collapse": ("diverged", 7),
}


def lr_factor(kind: str, epoch: float) -> float:
    """The schedule's LR factor at 0-based ``epoch`` (as ``optim.schedule`` computes it)."""
    if kind == "multistep":
        return 0.1 if epoch >= MILESTONE else 1.0
    return 0.5 * (1 + math.cos(math.pi * min(epoch / EPOCHS, 1.0)))


class Run:
    def __init__(self, rng: np.random.Generator, family: str) -> None:
        self.rng = rng
        self.kind = "multistep" if rng.uniform() < 0.6 else "cosine"
        lo, hi = (0.6, 1.0) if family == "late_crosser" else (0.1, 0.5)
        self.lr = float(rng.uniform(lo, hi))  # relative to the space's largest
        self.quality = float(rng.uniform(0.25, 0.5))
        if family in ("slow_starter", "late_crosser"):
            self.quality = float(rng.uniform(0.35, 0.6))  # the runs a sweep is after
        if family == "noisy":
            self.quality = float(rng.uniform(0.1, 0.25))
        self.delay = int(rng.integers(3, 9)) if family == "slow_starter" else 0
        self.tau = float(rng.uniform(2.0, 5.0))
        self.noise = float(rng.uniform(0.03, 0.08)) * (1 + self.lr)
        if family == "noisy":
            self.noise = float(rng.uniform(0.2, 0.35))
        self.loss0 = float(rng.uniform(6.0, 9.0))

    def level(self, t: int) -> float:
        """Smooth mAP after ``t`` epochs (1-based)."""
        if t <= self.delay:
            return 0.0
        x = t - self.delay
        shape = (1 - math.exp(-x / self.tau)) ** 1.5  # convex at first: a sigmoid-like rise
        plateau = self.quality * (1 - 0.3 * self.lr)
        drop = 1 - lr_factor(self.kind, t - 0.5)  # how far the LR has come down
        if self.kind == "multistep" and t > MILESTONE:
            drop = 0.9 * (1 - math.exp(-(t - MILESTONE) / 1.5))
        return plateau * (1 + 0.6 * self.lr * drop / 0.9) * shape

    def report(self, t: int, *, map_: float | None = None, loss_scale: float = 1.0) -> dict:
        rng = self.rng
        m = self.level(t) if map_ is None else map_
        noisy = m * float(np.exp(rng.normal(0, self.noise))) + float(rng.normal(0, 0.004))
        progress = self.level(t) / max(self.quality, 1e-9)
        loss = self.loss0 * (1 - 0.6 * progress) * loss_scale
        loss *= float(np.exp(rng.normal(0, 0.02)))
        parts = {"cls": 0.3, "bbox": 0.3, "giou": 0.4}
        out: dict[str, Any] = {"step": t, "train/loss": loss}
        out.update({f"train/raw_{c}": loss * w for c, w in parts.items()})
        out["train/grad_norm"] = 5.0 * float(np.exp(rng.normal(0, 0.15)))
        out["train/lr"] = 1e-3 * self.lr * lr_factor(self.kind, t - 1)
        out["val/map"] = max(0.0, noisy)
        return out

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"optim.lr": 1e-3 * self.lr, "optim.schedule.kind": self.kind}
        if self.kind == "multistep":
            p.update({"optim.schedule.milestones": [MILESTONE], "optim.schedule.gamma": 0.1})
        return p


def trial(rng: np.random.Generator, family: str) -> tuple[Run, list[dict], int | None]:
    run = Run(rng, family)
    if family == "dead":
        hist = [run.report(t, map_=abs(float(rng.normal(0, 0.003)))) for t in range(1, EPOCHS + 1)]
        for r in hist:
            r["train/loss"] = run.loss0 * float(np.exp(rng.normal(0, 0.02)))
        return run, hist, 0
    if family == "nan":
        k = int(rng.integers(4, EPOCHS - 4))
        hist = [run.report(t) for t in range(1, k)]
        bad = run.report(k)
        bad["train/loss"] = bad["train/raw_cls"] = math.nan
        bad["val/map"] = math.nan
        return run, [*hist, bad], k - 1
    if family == "collapse":
        k = int(rng.integers(8, EPOCHS - 6))
        hist = [run.report(t) for t in range(1, k)]
        peak = run.level(k - 1)
        for t in range(k, EPOCHS + 1):
            j = t - k + 1
            hist.append(run.report(t, map_=peak * math.exp(-j / 1.5), loss_scale=1 + 0.05 * j))
        return run, hist, k - 1
    return run, [run.report(t) for t in range(1, EPOCHS + 1)], None


def generate(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for family, (label, count) in FAMILIES.items():
        for i in range(count):
            run, history, onset = trial(rng, family)
            out.append(
                {
                    "trial": f"{family}-{i:03d}",
                    "label": label,
                    "family": family,
                    "onset": onset,
                    "params": run.params(),
                    "history": [
                        {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in r.items()}
                        for r in history
                    ],
                }
            )
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    trials = generate(args.seed)
    with args.out.open("w") as f:
        for t in trials:
            f.write(json.dumps(t, separators=(",", ":")) + "\n")
    print(f"wrote {len(trials)} trials to {args.out}")


if __name__ == "__main__":
    main()

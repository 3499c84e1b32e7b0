"""Seeded families of realistic learning curves, healthy and diverged, as JSON Lines.

Run: python bench/curves/generate.py --out bench/curves/generated.jsonl --seed 0 --trials 200

One trial per line::

    {"trial": "spike_recover-007", "label": "healthy", "family": "spike_recover", "onset": 12,
     "history": [{"step": 1, "train/loss": 9.1, "train/raw_cls": 1.3, ..., "val/map": 0.01}, ...]}

``step`` is the report index starting at 1 (one report per epoch); ``onset`` is the index into
``history`` of the first abnormal report (``null`` for a clean healthy run). Every trial is a
detection-style run: three raw loss components (``cls``, ``bbox`` L1, ``giou``) whose weighted
sum is ``train/loss`` (the weights are sampled per trial, as a loss sweep would), a gradient
norm before clipping, and ``val/map`` that lags the loss. Some trials evaluate every other
epoch, so ``val/map`` is missing from half their reports. Multiplicative noise is on every
metric. NaN and inf are written as JSON's ``NaN`` / ``Infinity`` extensions (Python's ``json``
reads them back).

The set is used by ``tests/unit/test_divergence.py`` to check the default divergence rules.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Report = dict[str, Any]
Trial = tuple[list[Report], int | None]

#: family -> (label, share of the trials)
FAMILIES: dict[str, tuple[str, float]] = {
    "healthy": ("healthy", 0.35),
    "slow_starter": ("healthy", 0.12),
    "spike_recover": ("healthy", 0.13),
    "nan": ("diverged", 0.07),
    "explosion": ("diverged", 0.07),
    "oscillation": ("diverged", 0.06),
    "plateau": ("diverged", 0.06),
    "collapse": ("diverged", 0.07),
    "component_explosion": ("diverged", 0.07),
}

COMPONENTS = ("cls", "bbox", "giou")


class Run:
    """The smooth shape of one healthy run; families perturb copies of it."""

    def __init__(self, rng: np.random.Generator, *, delay: int = 0) -> None:
        self.rng = rng
        self.n = int(rng.integers(20, 31))
        # a loss-weight sweep: weights vary by a factor of a few around DETR-like defaults
        self.weights = {
            c: w * float(np.exp(rng.uniform(-0.7, 0.7)))
            for c, w in zip(COMPONENTS, (1.0, 5.0, 2.0), strict=True)
        }
        self.init = {
            "cls": rng.uniform(1.0, 1.6),
            "bbox": rng.uniform(0.6, 1.0),
            "giou": rng.uniform(1.1, 1.4),
        }
        quality = rng.uniform(0, 1)  # 1 = the best runs: lowest losses, highest mAP
        self.final = {
            "cls": self.init["cls"] * (0.5 - 0.25 * quality),
            "bbox": self.init["bbox"] * (0.25 - 0.17 * quality),
            "giou": self.init["giou"] * (0.5 - 0.2 * quality),
        }
        self.map_final = 0.2 + 0.3 * quality + rng.normal(0, 0.02)
        self.tau = rng.uniform(2.0, 8.0) if delay == 0 else rng.uniform(2.0, 5.0)
        self.delay = delay
        self.noise = rng.uniform(0.01, 0.05)
        self.grad0 = float(np.exp(rng.uniform(np.log(2), np.log(30))))
        self.grad_drift = rng.uniform(-0.5, 1.0)
        self.eval_every = 2 if rng.uniform() < 0.2 else 1

    def progress(self, t: int) -> float:
        """Fraction of the way from the initial to the final loss at report ``t`` (1-based)."""
        return max(0.0, 1.0 - math.exp(-(t - self.delay) / self.tau)) if t > self.delay else 0.0

    def raw(self, t: int) -> dict[str, float]:
        p = self.progress(t)
        return {c: self.init[c] + (self.final[c] - self.init[c]) * p for c in COMPONENTS}

    def report(
        self,
        t: int,
        *,
        raw: dict[str, float] | None = None,
        grad: float | None = None,
        map_: float | None = None,
    ) -> Report:
        """A noisy report at ``t`` from the smooth values (overridden ones included)."""
        rng = self.rng
        raw = raw if raw is not None else self.raw(t)
        noisy = {c: v * float(np.exp(rng.normal(0, self.noise))) for c, v in raw.items()}
        total = sum(self.weights[c] * v for c, v in noisy.items())
        grad = grad if grad is not None else self.grad0 * (1 + self.grad_drift * self.progress(t))
        out: Report = {"step": t, "train/loss": total}
        out.update({f"train/raw_{c}": v for c, v in noisy.items()})
        out["train/grad_norm"] = grad * float(np.exp(rng.normal(0, 0.15)))
        if t % self.eval_every == 0:
            m = map_ if map_ is not None else self.map_final * self.progress(t) ** 1.3
            noisy_map = m * float(np.exp(rng.normal(0, 0.05))) + rng.normal(0, 0.004)
            out["val/map"] = max(0.0, float(noisy_map))
        return out


def healthy(rng: np.random.Generator) -> Trial:
    run = Run(rng)
    return [run.report(t) for t in range(1, run.n + 1)], None


def slow_starter(rng: np.random.Generator) -> Trial:
    """Flat for 3-7 epochs (warm-up, a small learning rate), then a healthy convergence."""
    run = Run(rng, delay=int(rng.integers(3, 8)))
    return [run.report(t) for t in range(1, run.n + 1)], None


def spike_recover(rng: np.random.Generator) -> Trial:
    """One bad epoch (a bad batch, a learning-rate restart) that the next epoch recovers from."""
    run = Run(rng)
    k = int(rng.integers(4, run.n - 2))
    history = []
    for t in range(1, run.n + 1):
        if t == k:
            s = rng.uniform(1.6, 3.5)
            g = run.grad0 * (1 + run.grad_drift * run.progress(t)) * rng.uniform(1.5, 3.5)
            m = run.map_final * run.progress(t) ** 1.3 * rng.uniform(0.7, 0.95)
            history.append(
                run.report(t, raw={c: v * s for c, v in run.raw(t).items()}, grad=g, map_=m)
            )
        else:
            history.append(run.report(t))
    return history, k - 1


def nan(rng: np.random.Generator) -> Trial:
    """Healthy until step k, where the loss (and some components) turn NaN/inf; a few more
    NaN reports may follow (offline logs of runs that were not stopped)."""
    run = Run(rng)
    k = int(rng.integers(3, run.n + 1))
    history = [run.report(t) for t in range(1, k)]
    bad = rng.choice(COMPONENTS, size=int(rng.integers(1, 4)), replace=False)
    nan_eval = rng.uniform() < 0.5
    for t in range(k, min(run.n, k + int(rng.integers(0, 4))) + 1):
        report = run.report(t)
        if nan_eval:
            report["val/map"] = math.nan  # evaluating NaN weights: NaN scores, NaN mAP
        else:
            report.pop("val/map", None)  # the trial skipped evaluation
        report["train/loss"] = math.nan
        for c in bad:
            report[f"train/raw_{c}"] = math.nan if rng.uniform() < 0.7 else math.inf
        if rng.uniform() < 0.5:
            report["train/grad_norm"] = math.nan if rng.uniform() < 0.5 else math.inf
        history.append(report)
    return history, k - 1


def explosion(rng: np.random.Generator) -> Trial:
    """Learning, then from step k every loss grows geometrically (learning rate too high)."""
    run = Run(rng)
    k = int(rng.integers(5, run.n - 5))
    r, rg, rm = rng.uniform(1.5, 3.0), rng.uniform(1.5, 4.0), rng.uniform(0.3, 0.7)
    history = [run.report(t) for t in range(1, k)]
    base_raw, base_map = run.raw(k - 1), run.map_final * run.progress(k - 1) ** 1.3
    base_grad = run.grad0 * (1 + run.grad_drift * run.progress(k - 1))
    for t in range(k, run.n + 1):
        j = t - k + 1
        raw = {c: v * r**j for c, v in base_raw.items()}
        history.append(run.report(t, raw=raw, grad=base_grad * rg**j, map_=base_map * rm**j))
    return history, k - 1


def oscillation(rng: np.random.Generator) -> Trial:
    """From step k the loss bounces up and down by 15-50% every epoch and stops improving."""
    run = Run(rng)
    k = int(rng.integers(3, run.n - 8))
    a = rng.uniform(0.15, 0.5)
    history = [run.report(t) for t in range(1, k)]
    base_raw, base_map = run.raw(k), run.map_final * run.progress(k) ** 1.3
    base_grad = run.grad0 * rng.uniform(2, 4)
    for t in range(k, run.n + 1):
        sign = 1 if (t - k) % 2 == 0 else -1
        raw = {c: v * (1 + a * sign) for c, v in base_raw.items()}
        m = base_map * (1 - 0.5 * a * sign) * (0.97 ** (t - k))
        history.append(run.report(t, raw=raw, grad=base_grad * (1 + a * sign), map_=m))
    return history, k - 1


def plateau(rng: np.random.Generator) -> Trial:
    """Never leaves the starting loss (dead learning rate, a broken target): at most a few
    percent of drift, and val/map near zero."""
    run = Run(rng)
    drift = rng.uniform(0.0, 0.1)
    history = []
    for t in range(1, run.n + 1):
        raw = {c: v * (1 - drift * t / run.n) for c, v in run.init.items()}
        history.append(run.report(t, raw=raw, grad=run.grad0, map_=abs(rng.normal(0, 0.004))))
    return history, 0


def collapse(rng: np.random.Generator) -> Trial:
    """Learns, then from step k val/map falls to near zero (every query predicts background)
    while the training loss only creeps up."""
    run = Run(rng)
    k = int(rng.integers(6, run.n - 5))
    peak = run.map_final * run.progress(k - 1) ** 1.3
    decay, creep = rng.uniform(1.0, 2.5), rng.uniform(0.02, 0.08)
    history = [run.report(t) for t in range(1, k)]
    base_raw = run.raw(k - 1)
    for t in range(k, run.n + 1):
        j = t - k + 1
        raw = {c: v * (1 + creep * j) for c, v in base_raw.items()}
        history.append(run.report(t, raw=raw, map_=peak * math.exp(-j / decay)))
    return history, k - 1


def component_explosion(rng: np.random.Generator) -> Trial:
    """A component whose sampled weight is tiny explodes from step k; the weighted total grows
    only mildly because of that weight, yet the detector it trains is broken."""
    run = Run(rng)
    c = str(rng.choice(["cls", "bbox"]))  # GIoU loss is bounded by 2: it cannot explode
    run.weights[c] = rng.uniform(0.005, 0.03)
    k = int(rng.integers(5, run.n - 7))
    r = rng.uniform(1.3, 2.0)
    history = [run.report(t) for t in range(1, k)]
    for t in range(k, run.n + 1):
        raw = run.raw(t)
        raw[c] = raw[c] * r ** (t - k + 1)
        history.append(run.report(t, raw=raw))
    return history, k - 1


GENERATORS: dict[str, Callable[[np.random.Generator], Trial]] = {
    "healthy": healthy,
    "slow_starter": slow_starter,
    "spike_recover": spike_recover,
    "nan": nan,
    "explosion": explosion,
    "oscillation": oscillation,
    "plateau": plateau,
    "collapse": collapse,
    "component_explosion": component_explosion,
}


def _counts(trials: int) -> dict[str, int]:
    """Trials per family by the largest remainder, so every family gets its share exactly."""
    exact = {f: share * trials for f, (_, share) in FAMILIES.items()}
    counts = {f: int(x) for f, x in exact.items()}
    rest = sorted(exact, key=lambda f: counts[f] - exact[f])[: trials - sum(counts.values())]
    for f in rest:
        counts[f] += 1
    return counts


def _round(report: Report) -> Report:
    # 4 significant digits keep the file small; the rules never look closer than that
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in report.items()}


def generate(seed: int, trials: int) -> list[dict[str, Any]]:
    """``trials`` trials from all families, in a seeded random order."""
    rng = np.random.default_rng(seed)
    out = []
    for family, count in _counts(trials).items():
        for i in range(count):
            history, onset = GENERATORS[family](rng)
            out.append(
                {
                    "trial": f"{family}-{i:03d}",
                    "label": FAMILIES[family][0],
                    "family": family,
                    "onset": onset,
                    "history": [_round(r) for r in history],
                }
            )
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("generated.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args(argv)
    trials = generate(args.seed, args.trials)
    with args.out.open("w") as f:
        for trial in trials:
            f.write(json.dumps(trial, separators=(",", ":")) + "\n")
    print(f"wrote {len(trials)} trials to {args.out}")


if __name__ == "__main__":
    main()

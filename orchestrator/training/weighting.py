"""``loss.weighting``: how the trial loop combines a task's loss terms (docs/loss-weighting.md).

Tasks return their unweighted, differentiable terms and their configured weights in
:class:`~orchestrator.tasks.base.LossOutput`; with ``fixed`` the task's own total is used
unchanged, otherwise :class:`LossWeighting` rebuilds the total:

``balance``
    ``total = sum_c w_c * L_c * (|L_ref| / |L_c|).detach()``: every term takes the reference
    term's magnitude (RAM's ``a + b / (b / a).detach()``), while its gradient keeps its own
    direction, scaled by the same factor; ``w_c`` then sets relative magnitudes directly.
``target_share``
    Before training, a forward-only probe over a few micro-batches per rank measures each
    term's mean magnitude ``m_c`` (summed over all ranks, so every rank computes the same
    weights); then ``w_c = s_c * S / m_c`` with ``s_c`` the normalised share and
    ``S = sum_c w0_c * m_c`` the total the fixed weights ``w0`` gave at that point, so
    only the split changes, not the scale the learning rate was tuned at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from orchestrator.tasks.base import LossConfig, LossOutput

#: smallest magnitude a term may have as a divisor: a term that is exactly 0 in one
#: micro-batch (no positives) must not make the total NaN
EPS = 1e-12


def balanced_total(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float], reference: str
) -> tuple[torch.Tensor, dict[str, float]]:
    """RAM's magnitude balancing; returns the total and each term's effective weight
    (``w_c * |L_ref| / |L_c|``, what the term was multiplied by in this micro-batch)."""
    ref = terms[reference].detach().abs()
    total: Any = 0.0
    effective: dict[str, float] = {}
    for name, term in terms.items():
        factor = ref / term.detach().abs().clamp_min(EPS) if name != reference else 1.0
        multiplier = weights[name] * factor
        total = total + multiplier * term
        effective[name] = float(multiplier)
    return total, effective


def target_share_weights(
    magnitudes: Mapping[str, float],
    shares: Mapping[str, float],
    fixed: Mapping[str, float],
) -> dict[str, float]:
    """Weights under which each term contributes its normalised share of the total.

    ``magnitudes`` are the mean ``|L_c|`` measured at the start, ``fixed`` the configured
    weights; the total keeps the fixed weights' magnitude ``sum_c fixed_c * m_c`` (or the
    plain sum of magnitudes when that is 0, e.g. every fixed weight 0).
    """
    missing = [c for c in magnitudes if c not in shares]
    if missing:
        raise ValueError(
            f"loss.share: target_share needs a share for every component; missing "
            f"{', '.join(missing)} (components: {', '.join(magnitudes)})"
        )
    unknown = [c for c in shares if c not in magnitudes]
    if unknown:
        raise ValueError(
            f"loss.share.{unknown[0]}: not a loss component; components: {', '.join(magnitudes)}"
        )
    share_sum = sum(shares.values())
    if share_sum <= 0:
        raise ValueError(f"loss.share: shares must not all be 0, got {dict(shares)}")
    scale = sum(fixed[c] * m for c, m in magnitudes.items()) or sum(magnitudes.values())
    weights: dict[str, float] = {}
    for name, magnitude in magnitudes.items():
        share = shares[name] / share_sum
        if share == 0:
            weights[name] = 0.0
            continue
        if magnitude <= EPS:
            raise ValueError(
                f"loss.share.{name}: the {name} term was 0 on every calibration micro-batch, "
                "so no weight gives it a share of the total; give it share 0"
            )
        weights[name] = share * scale / magnitude
    return weights


class LossWeighting:
    """Applies ``loss.weighting`` to each micro-batch's :class:`LossOutput` in the loop and
    keeps the mean effective weight of each term over an epoch (``train/weight_<c>``)."""

    def __init__(self, config: LossConfig, components: tuple[str, ...]) -> None:
        self.mode = config.weighting
        self.components = components
        # a task without components (``command``) never reaches the loop's weighting
        self.reference = config.balance_reference or (components[0] if components else "")
        self.shares = dict(config.share)
        self.calibration_batches = config.calibration_batches
        #: ``target_share``: the weights the calibration chose
        self.weights: dict[str, float] | None = None
        self._sums = dict.fromkeys(components, 0.0)
        self._count = 0

    def apply(self, out: LossOutput) -> LossOutput:
        """``out`` itself under ``fixed``; otherwise a copy whose total is recombined."""
        if self.mode == "fixed":
            return out
        self._check_terms(out)
        total: Any
        if self.mode == "balance":
            total, effective = balanced_total(out.terms, out.weights, self.reference)
        else:
            if self.weights is None:
                raise RuntimeError("target_share weights are used before calibrate()")
            effective = self.weights
            total = 0.0
            for name, term in out.terms.items():
                total = total + effective[name] * term
        for name, value in effective.items():
            self._sums[name] += value
        self._count += 1
        return LossOutput(
            total=total,
            raw=out.raw,
            weighted={c: effective[c] * out.raw[c] for c in out.raw},
            reduction=out.reduction,
            terms=out.terms,
            weights=effective,
        )

    def calibrate(
        self,
        task: Any,
        model: torch.nn.Module,
        dataset: Any,
        micro: int,
        accelerator: Any,
        seed: int,
    ) -> dict[str, float]:
        """``target_share``: measure the terms' magnitudes and set :attr:`weights`.

        Every rank runs exactly ``calibration_batches`` forward passes of ``micro`` samples
        (a seeded permutation, dealt round-robin to ranks), so collectives inside the forward
        (DDP's buffer broadcast) line up; the sums are all-reduced, so every rank gets the
        same weights. Buffers the train-mode forward updates (BatchNorm statistics) are
        restored, so training starts where it would have without the probe.
        """
        if self.mode != "target_share":
            return {}
        from accelerate.utils import send_to_device

        k = len(self.components)
        sums = torch.zeros(1 + k, dtype=torch.float64)
        fixed: dict[str, float] = {}
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
        rank, world = accelerator.process_index, accelerator.num_processes
        saved = {name: b.detach().clone() for name, b in model.named_buffers()}
        try:
            with torch.no_grad():
                for b in range(self.calibration_batches):
                    picks = [
                        int(order[(rank + world * (b * micro + i)) % len(order)])
                        for i in range(micro)
                    ]
                    batch = send_to_device(
                        task.collate([dataset[i] for i in picks]), accelerator.device
                    )
                    out = task.loss(model, batch)
                    self._check_terms(out)
                    fixed = dict(out.weights)
                    sums[0] += 1
                    for i, name in enumerate(self.components):
                        sums[1 + i] += float(out.terms[name].detach().abs())
        finally:
            with torch.no_grad():
                for name, buffer in model.named_buffers():
                    buffer.copy_(saved[name])
        totals = accelerator.reduce(sums.to(accelerator.device), "sum").cpu()
        magnitudes = {c: float(totals[1 + i] / totals[0]) for i, c in enumerate(self.components)}
        self.weights = target_share_weights(magnitudes, self.shares, fixed)
        return self.weights

    def _check_terms(self, out: LossOutput) -> None:
        if set(out.terms) != set(self.components):
            raise RuntimeError(
                f"loss.weighting: {self.mode} needs the task's differentiable terms "
                f"{list(self.components)} in LossOutput.terms, got {sorted(out.terms)}; "
                "build the task's output with LossOutput.weighted_sum"
            )

    def epoch_metrics(self) -> dict[str, float]:
        """``train/weight_<c>``: the mean effective weight since the last call (constant
        under ``target_share``, varying per micro-batch under ``balance``); {} for ``fixed``."""
        if self.mode == "fixed" or self._count == 0:
            return {}
        metrics = {f"train/weight_{c}": self._sums[c] / self._count for c in self.components}
        self._sums = dict.fromkeys(self.components, 0.0)
        self._count = 0
        return metrics

"""Causal forecast of a trial's final objective from its own curve so far.

Pure Python (no numpy, no Ray): the forecast scheduler calls it at each rung, and the
replay, the unit tests and the benchmarks call the same function.

Values are "higher is better" (the caller multiplies a minimised metric by -1). The model is
a saturating learning curve started at the curve's onset ``t0`` (its first report that rose
above the flat start)::

    y(t) = a - b * exp(-(t - t0) / tau)        b >= 0 (rising), tau on a fixed grid

For each ``tau`` the best ``a, b`` are a linear least-squares fit (Domhan et al. 2015 fit an
ensemble of such parametric families; one family on a grid is enough for a ranking, and
costs a few microseconds per point). The *point* forecast is the best fit's value at the
horizon; the *optimistic* forecast is the highest value at the horizon of every ``tau``
whose fit is within ``band`` noise units of the best one (a profile-likelihood band: the
slowest-saturating curves the data cannot rule out), plus ``band`` standard deviations of
the curve's own noise. A very large ``tau`` is a straight line: the recent slope times the
remaining budget bounds the optimistic forecast of any saturating (concave) curve.

Two things the fit cannot judge are reported as a *warming* phase instead of a forecast:

* a curve that has not risen above its own noise (or above ``min_rise``, which the
  scheduler takes from the trial's peers): a slow starter and a dead run look alike;
* a curve that still accelerates (its last two-report slope is its steepest so far): a
  saturating model fitted to the convex start of a sigmoid under-forecasts it.

An LR drop ahead (known from the trial's config) raises the optimistic forecast by
``drop_gain x drop x`` the progress made so far: detectors gain after the drop, and the
ranking before it is not the ranking after it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: time constants of the saturating model, as multiples of the horizon; the largest is
#: indistinguishable from a straight line over the horizon
TAU_GRID = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 4.0, 8.0)

Phase = Literal["warming", "fitted"]


@dataclass(frozen=True)
class Forecast:
    """What a curve says about its value at the horizon (higher is better)."""

    phase: Phase
    #: the best fit's value at the horizon (warming: the last value)
    point: float
    #: the highest value at the horizon the curve cannot rule out (warming: +inf)
    upper: float
    #: the curve's own noise (a robust standard deviation of its report-to-report changes)
    noise: float
    #: one short sentence: why this phase / which bound
    why: str


def noise_of(values: Sequence[float]) -> float:
    """Robust noise estimate: the median absolute second difference / (0.6745 * sqrt 6).

    Second differences ``y[i+1] - 2 y[i] + y[i-1]`` cancel a locally linear trend; for
    independent Gaussian noise of standard deviation s they have standard deviation
    s * sqrt(6), and the median absolute value of a zero-mean Gaussian is 0.6745 of its
    standard deviation. A curve's bend inflates it a little, which errs on the side of a
    wider band. Reports are taken as evenly spaced.
    """
    d2 = sorted(
        abs(values[i + 1] - 2 * values[i] + values[i - 1]) for i in range(1, len(values) - 1)
    )
    if not d2:
        return 0.0
    mid = len(d2) // 2
    med = d2[mid] if len(d2) % 2 else 0.5 * (d2[mid - 1] + d2[mid])
    return med / (0.6745 * math.sqrt(6))


def onset(values: Sequence[float], noise: float) -> int:
    """Index of the last report of the flat start: the curve's first rise beyond its noise
    (and beyond a tenth of its total rise) starts after it."""
    first = values[0]
    rise = max(values) - first
    threshold = first + max(2 * noise, 0.1 * rise)
    for i, v in enumerate(values):
        if v > threshold:
            return max(i - 1, 0)
    return 0


def _accelerating(times: Sequence[float], values: Sequence[float], noise: float) -> bool:
    """The last two-report slope is the steepest so far, beyond the noise of a slope."""
    if len(values) < 4:
        return False
    slopes = [
        (values[i] - values[i - 2]) / (times[i] - times[i - 2]) for i in range(2, len(values))
    ]
    margin = 2 * noise / max(times[-1] - times[-3], 1e-12)
    return slopes[-1] > 0 and slopes[-1] > max(slopes[:-1]) + margin


def fit_saturating(
    times: Sequence[float], values: Sequence[float], tau: float, t0: float
) -> tuple[float, float, float]:
    """Least-squares ``a, b`` of ``a - b exp(-(t - t0)/tau)`` with ``b >= 0``; returns
    ``(a, b, sse)``. With ``b`` clamped at 0 the fit is the mean (a flat curve)."""
    g = [math.exp(-(t - t0) / tau) for t in times]
    n = len(values)
    mg = sum(g) / n
    my = sum(values) / n
    sgg = sum((x - mg) ** 2 for x in g)
    sgy = sum((x - mg) * (y - my) for x, y in zip(g, values, strict=True))
    c = sgy / sgg if sgg > 1e-15 else 0.0  # y = a + c g, so b = -c
    b = max(-c, 0.0)
    a = my + b * mg
    sse = sum((a - b * x - y) ** 2 for x, y in zip(g, values, strict=True))
    return a, b, sse


def forecast(
    times: Sequence[float],
    values: Sequence[float],
    horizon: float,
    *,
    band: float = 2.0,
    min_rise: float = 0.0,
    min_noise: float = 0.0,
    drop: float = 0.0,
    drop_gain: float = 0.0,
) -> Forecast:
    """Forecast of the value at ``horizon`` from ``values`` reported at ``times``.

    ``times`` increase; ``values`` are finite, higher is better. ``min_rise``: a curve that
    rose less than this (and less than 3 noise units) from its first value is still
    warming. ``min_noise``: a floor under the curve's own noise estimate (a short curve
    has too few second differences to estimate it; the scheduler pools its peers').
    ``drop``: the fraction of the learning rate the trial's schedule still takes away
    before the horizon (0 = none); ``drop_gain``: the relative gain such a drop may bring,
    applied to the progress so far.
    """
    if len(times) != len(values):
        raise ValueError(f"times and values differ in length: {len(times)} != {len(values)}")
    n = len(values)
    last = values[-1] if values else -math.inf
    if n < 3:
        return Forecast("warming", last, math.inf, 0.0, f"only {n} evaluation(s) so far")
    noise = max(noise_of(values), min_noise)
    rise = max(values) - values[0]
    if rise <= max(3 * noise, min_rise):
        return Forecast(
            "warming",
            last,
            math.inf,
            noise,
            f"not started: rose {rise:.3g} since its first report "
            f"(noise {noise:.3g}, peers' start threshold {min_rise:.3g})",
        )
    if _accelerating(times, values, noise):
        return Forecast(
            "warming",
            last,
            math.inf,
            noise,
            "still accelerating: its latest slope is its steepest",
        )
    k = onset(values, noise)
    ts, ys = times[k:], values[k:]
    t0 = ts[0]
    span = max(horizon - t0, 1e-9)
    fits = []
    for rel in TAU_GRID:
        tau = rel * span
        a, b, sse = fit_saturating(ts, ys, tau, t0)
        fits.append((sse, a - b * math.exp(-(horizon - t0) / tau)))
    best_sse, point = min(fits)
    dof = max(len(ys) - 2, 1)
    sigma = max(math.sqrt(best_sse / dof), noise)
    slack = best_sse + band**2 * sigma**2
    upper = max(f for sse, f in fits if sse <= slack) + band * sigma
    why = f"saturating fit from report {k + 1}: forecast {point:.3g}, optimistic {upper:.3g}"
    if drop > 0 and drop_gain > 0:
        gain = drop_gain * drop * max(point - values[0], 0.0)
        upper += gain
        why += f" + {gain:.3g} for the LR drop ahead ({drop:.0%} of the LR)"
    return Forecast("fitted", point, upper, noise, why)

"""Small SVG building blocks for the report's charts: scales, ticks, escaping, colours.

Hand-written SVG instead of a plotting library: the report opens offline, stays small
(no multi-megabyte JS bundle) and draws without JavaScript.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

#: Okabe-Ito + Tableau hues: tell apart for most colour-blind readers, readable on white
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#D55E00",
    "#56B4E9",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#1F3A93",
    "#B8860B",
)
FONT = "font-family='system-ui, sans-serif'"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def esc(text: object) -> str:
    return escape(str(text), quote=True)


@dataclass(frozen=True)
class Scale:
    """Maps data ``[lo, hi]`` onto pixels ``[a, b]``, linearly or in log10."""

    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    def __call__(self, v: float) -> float:
        lo, hi, v = (
            (math.log10(self.lo), math.log10(self.hi), math.log10(v))
            if self.log
            else (self.lo, self.hi, v)
        )
        if hi == lo:
            return (self.a + self.b) / 2
        return self.a + (v - lo) / (hi - lo) * (self.b - self.a)


def padded(values: list[float], log: bool = False) -> tuple[float, float]:
    """A data range around ``values`` with 5% margin (a flat series gets ±1 or ±10%)."""
    lo, hi = min(values), max(values)
    if log:
        return lo, hi
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def ticks(lo: float, hi: float, count: int = 5, log: bool = False) -> list[float]:
    """About ``count`` round tick values within ``[lo, hi]`` (powers of ten on a log axis)."""
    if log and lo > 0:
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        out = [10.0**e for e in range(first, last + 1) if lo <= 10.0**e <= hi]
        return out if len(out) >= 2 else [lo, hi]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def text(
    x: float,
    y: float,
    label: object,
    size: int = 13,
    anchor: str = "middle",
    tip: str = "",
    **attrs: str,
) -> str:
    """A text element; ``tip`` becomes its hover title (e.g. the full name of a cut label);
    keyword attributes are written with ``_`` as ``-`` (``font_weight`` -> font-weight,
    ``class_`` -> class)."""
    extra = "".join(f" {k.rstrip('_').replace('_', '-')}='{esc(v)}'" for k, v in attrs.items())
    title = f"<title>{esc(tip)}</title>" if tip else ""
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
        f"{FONT} fill='#222'{extra}>{title}{esc(label)}</text>"
    )


def line(
    x1: float, y1: float, x2: float, y2: float, stroke: str = "#ccc", width: float = 1
) -> str:
    return (
        f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' "
        f"stroke='{stroke}' stroke-width='{width}'/>"
    )


def short(label: str, limit: int = 22) -> str:
    """A label cut to ``limit`` characters with an ellipsis (the full name goes in a title)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"

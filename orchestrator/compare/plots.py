"""The report's charts as inline SVG strings: curves, parallel coordinates, importance
bars, Pareto scatter, confidence intervals. Every data mark carries a class (``trace``,
``pc-line``, ``bar``, ``point``, ``ci``) and a ``<title>`` so it can be hovered and tested."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.compare.svg import (
    FONT,
    Scale,
    esc,
    line,
    padded,
    short,
    text,
    ticks,
)
from orchestrator.compare.table import fmt


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]
    color: str
    dashed: bool = False


def _open(width: int, height: int, name: str) -> str:
    return (
        f"<svg class='chart' data-chart='{esc(name)}' xmlns='http://www.w3.org/2000/svg' "
        f"width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='{esc(name)}'>"
        f"<rect width='{width}' height='{height}' fill='white'/>"
    )


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def line_chart(title: str, series: Sequence[Series], width: int = 420, height: int = 290) -> str:
    """One metric over optimizer steps, one line per run.

    The y range follows the solid (healthy) series: a dashed (stopped) run that blows up
    is clipped at the edge instead of flattening every other line; a log axis when the
    values still span more than two decades."""
    left, right, top, bottom = 66, 14, 30, 42
    out = [_open(width, height, title), text(width / 2, 19, title, size=14, font_weight="600")]
    data = [(s, _finite(s.points)) for s in series]
    data = [(s, p) for s, p in data if p]
    if not data:
        out.append(text(width / 2, height / 2, "no data", fill="#888"))
        return "".join(out) + "</svg>"
    xs = [x for _, p in data for x, _ in p]
    ys = _y_range_values(data)
    log = min(ys) > 0 and max(ys) / min(ys) > 100
    ylo, yhi = padded(ys, log)
    xlo, xhi = min(xs), max(xs)
    if xlo == xhi:
        xlo, xhi = xlo - 1, xhi + 1
    sx = Scale(xlo, xhi, left, width - right)
    sy = Scale(ylo, yhi, height - bottom, top, log)
    out += _axes_box(left, top, width - right, height - bottom)
    for v in ticks(ylo, yhi, 5, log):
        y = sy(v)
        out.append(line(left, y, width - right, y, "#eee"))
        out.append(text(left - 6, y + 4, fmt(v), size=12, anchor="end"))
    for v in ticks(xlo, xhi, 5):
        x = sx(v)
        out.append(text(x, height - bottom + 16, fmt(v), size=12))
    out.append(text((left + width - right) / 2, height - 6, "step", size=12, fill="#555"))
    if any(not ylo <= y <= yhi for _, p in data for _, y in p):
        out.append(
            text(width - right, top - 4, "dashed: clipped", size=11, anchor="end", fill="#666")
        )
    # a nested <svg> with an identity viewBox clips the traces to the plot area
    plot_h = height - bottom - top
    out.append(
        f"<svg x='0' y='{top}' width='{width}' height='{plot_h}' "
        f"viewBox='0 {top} {width} {plot_h}' overflow='hidden'>"
    )
    for s, pts in data:
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts)
        )
        dash = " stroke-dasharray='6 4'" if s.dashed else ""
        out.append(
            f"<path class='trace' data-run='{esc(s.label)}' d='{d}' fill='none' "
            f"stroke='{s.color}' stroke-width='2'{dash}><title>{esc(s.label)}: last "
            f"{fmt(pts[-1][1])} at step {fmt(pts[-1][0])}</title></path>"
        )
        if len(pts) == 1:  # a single report is a dot, not an invisible zero-length line
            x, y = pts[0]
            out.append(
                f"<circle class='point' cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='3.5' "
                f"fill='{s.color}'/>"
            )
    out.append("</svg>")
    for s, pts in data:
        if s.dashed:  # where a stopped run ended, kept on the chart's edge when off scale
            x, y = sx(pts[-1][0]), min(max(sy(pts[-1][1]), top + 4), height - bottom - 4)
            out.append(
                f"<path class='stop-mark' d='M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}"
                f"M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},{y - 4:.1f}' stroke='{s.color}' "
                f"stroke-width='2.5'><title>{esc(s.label)} stopped at step "
                f"{fmt(pts[-1][0])}: {fmt(pts[-1][1])}</title></path>"
            )
    return "".join(out) + "</svg>"


def _y_range_values(data: Sequence[tuple[Series, list[tuple[float, float]]]]) -> list[float]:
    """Solid series' values, plus dashed ones within one solid span of them (a stopped
    run stays visible until it leaves the healthy runs' scale)."""
    solid = [y for s, p in data for _, y in p if not s.dashed]
    dashed = [y for s, p in data for _, y in p if s.dashed]
    if not solid:
        return dashed
    lo, hi = min(solid), max(solid)
    span = hi - lo or abs(hi) or 1.0
    return solid + [y for y in dashed if lo - span <= y <= hi + span]


def _axes_box(x1: float, y1: float, x2: float, y2: float) -> list[str]:
    return [line(x1, y2, x2, y2, "#888"), line(x1, y1, x1, y2, "#888")]


@dataclass(frozen=True)
class Axis:
    """One vertical axis of a parallel-coordinates plot: numeric (maybe log) or choices."""

    name: str
    choices: tuple[str, ...] | None = None
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    #: low values at the top: a minimised objective, so that up means better on every
    #: objective axis
    reverse: bool = False


#: viridis at 6 stops, interpolated: dark = worst objective, yellow = best
_VIRIDIS = (
    (68, 1, 84),
    (65, 68, 135),
    (42, 120, 142),
    (34, 168, 132),
    (122, 209, 81),
    (253, 231, 37),
)


def viridis(t: float) -> str:
    t = min(1.0, max(0.0, t)) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1], strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def parallel_coordinates(
    axes: Sequence[Axis],
    lines: Sequence[tuple[str, list[str | float | None], float]],
    objective: str,
    higher_is_better: bool = True,
    width: int = 1300,
    height: int = 400,
) -> str:
    """One polyline per trial through its value on each axis, coloured by the objective
    (the third item of each line): yellow the best, purple the worst, whichever way the
    objective goes. ``None`` (a conditional parameter that was inactive) is drawn at an
    ``n/a`` mark under the axis."""
    left, right, top, bottom = 70, 90, 56, 48
    out = [_open(width, height, "parallel coordinates")]
    n = len(axes)
    if n < 2 or not lines:
        out.append(text(width / 2, height / 2, "not enough parameters or trials", fill="#888"))
        return "".join(out) + "</svg>"
    step = (width - left - right) / (n - 1)
    xs = [left + i * step for i in range(n)]
    y0, y1 = height - bottom - 30, top  # values; the n/a mark sits below y0
    na_y = height - bottom + 2
    objs = [o for _, _, o in lines]
    olo, ohi = min(objs), max(objs)

    def pos(axis: Axis, v: str | float | None) -> float:
        if v is None:
            return na_y
        if axis.choices is not None:
            k = axis.choices.index(str(v)) if str(v) in axis.choices else 0
            m = len(axis.choices)
            return y0 + (y1 - y0) * ((k + 0.5) / m)
        a, b = (y1, y0) if axis.reverse else (y0, y1)
        return Scale(axis.low, axis.high, a, b, axis.log and axis.low > 0)(float(v))

    def goodness(obj: float) -> float:
        if ohi == olo:
            return 0.5
        up = (obj - olo) / (ohi - olo)
        return up if higher_is_better else 1 - up

    order = sorted(range(len(lines)), key=lambda i: goodness(lines[i][2]))  # best on top
    for i in order:
        label, values, obj = lines[i]
        t = goodness(obj)
        pts = " ".join(
            f"{xs[k]:.1f},{pos(a, v):.1f}"
            for k, (a, v) in enumerate(zip(axes, values, strict=True))
        )
        out.append(
            f"<polyline class='pc-line' data-run='{esc(label)}' points='{pts}' fill='none' "
            f"stroke='{viridis(t)}' stroke-width='2.2' stroke-opacity='0.85'>"
            f"<title>{esc(label)}: {esc(objective)} = {fmt(obj)}</title></polyline>"
        )
    # many axes: names wider than the gap between axes go on two alternating rows
    widest = max(len(short(a.name, 26)) for a in axes) * 7.5  # ~px per char, 13 px bold
    staggered = widest > step - 8
    for k, (x, axis) in enumerate(zip(xs, axes, strict=True)):
        out.append(line(x, y1, x, y0, "#444", 1.5))
        out.append(
            text(
                x,
                top - (40 if staggered and k % 2 == 0 else 22 if staggered else 30),
                short(axis.name, 26),
                tip=axis.name,
                font_weight="600",
                class_="axis-label",
            )
        )
        if axis.choices is not None:
            labels = [(c, pos(axis, c)) for c in axis.choices]
        else:
            log = axis.log and axis.low > 0
            labels = [(fmt(v), pos(axis, v)) for v in ticks(axis.low, axis.high, 4, log)]
        for label, y in labels:
            out.append(_halo_text(x + 6, y + 4, short(label, 14), anchor="start"))
        if any(
            v is None
            for _, values, _ in lines
            for a, v in zip(axes, values, strict=True)
            if a is axis
        ):
            out.append(_halo_text(x + 6, na_y + 4, "n/a", anchor="start"))
    best, worst = (ohi, olo) if higher_is_better else (olo, ohi)
    out += _colorbar(width - right + 44, y1, y0, best, worst)
    return "".join(out) + "</svg>"


def _halo_text(x: float, y: float, label: str, anchor: str = "start") -> str:
    # a white outline keeps tick labels readable over the lines that cross them
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='12' text-anchor='{anchor}' {FONT} "
        f"fill='#222' stroke='white' stroke-width='3' paint-order='stroke'>{esc(label)}</text>"
    )


def _colorbar(x: float, y_top: float, y_bottom: float, best: float, worst: float) -> list[str]:
    # yellow (best) at the top; unlabelled: the objective's own axis, left of it, is named
    stops = "".join(
        f"<stop offset='{k / 10:.1f}' stop-color='{viridis(1 - k / 10)}'/>" for k in range(11)
    )
    return [
        f"<defs><linearGradient id='pc-grad' x1='0' y1='0' x2='0' y2='1'>{stops}"
        "</linearGradient></defs>",
        f"<rect x='{x:.1f}' y='{y_top:.1f}' width='14' height='{y_bottom - y_top:.1f}' "
        "fill='url(#pc-grad)'/>",
        text(x + 7, y_top - 8, fmt(best), size=12),
        text(x + 7, y_bottom + 16, fmt(worst), size=12),
    ]


def bar_chart(title: str, items: Sequence[tuple[str, float]], width: int = 620) -> str:
    """Horizontal bars, one per item, largest first (parameter importances)."""
    row, top, left, right = 30, 36, 190, 70
    height = top + row * max(1, len(items)) + 12
    out = [_open(width, height, title), text(width / 2, 21, title, size=14, font_weight="600")]
    if not items:
        out.append(text(width / 2, height / 2 + 8, "no data", fill="#888"))
        return "".join(out) + "</svg>"
    vmax = max(v for _, v in items) or 1.0
    sx = Scale(0.0, vmax, left, width - right)
    for i, (name, v) in enumerate(items):
        y = top + i * row
        out.append(text(left - 8, y + 18, short(name, 26), anchor="end", tip=name))
        out.append(
            f"<rect class='bar' x='{left}' y='{y + 4}' width='{max(1.0, sx(v) - left):.1f}' "
            f"height='{row - 10}' fill='#0072B2'><title>{esc(name)}: {v:.3f}</title></rect>"
        )
        out.append(text(sx(v) + 6, y + 18, f"{v:.3f}", size=12, anchor="start"))
    return "".join(out) + "</svg>"


def scatter(
    title: str,
    points: Sequence[tuple[str, float, float, bool]],
    x_label: str,
    y_label: str,
    width: int = 620,
    height: int = 420,
) -> str:
    """Trials as points of two objectives; ``True`` marks the Pareto front, which is
    drawn larger, in colour, joined in x order and labelled."""
    left, right, top, bottom = 76, 24, 34, 52
    out = [_open(width, height, title), text(width / 2, 21, title, size=14, font_weight="600")]
    if not points:
        out.append(text(width / 2, height / 2, "no data", fill="#888"))
        return "".join(out) + "</svg>"
    xlo, xhi = padded([p[1] for p in points])
    ylo, yhi = padded([p[2] for p in points])
    sx = Scale(xlo, xhi, left, width - right)
    sy = Scale(ylo, yhi, height - bottom, top)
    out += _axes_box(left, top, width - right, height - bottom)
    for v in ticks(ylo, yhi):
        out.append(line(left, sy(v), width - right, sy(v), "#eee"))
        out.append(text(left - 6, sy(v) + 4, fmt(v), size=12, anchor="end"))
    for v in ticks(xlo, xhi):
        out.append(text(sx(v), height - bottom + 17, fmt(v), size=12))
    out.append(text((left + width - right) / 2, height - 10, x_label, size=13))
    out.append(
        f"<text transform='translate(16,{(top + height - bottom) / 2:.1f}) rotate(-90)' "
        f"font-size='13' text-anchor='middle' {FONT} fill='#222'>{esc(y_label)}</text>"
    )
    front = sorted((p for p in points if p[3]), key=lambda p: p[1])
    if len(front) > 1:
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for _, x, y, _ in front)
        out.append(
            f"<polyline points='{pts}' fill='none' stroke='#D55E00' stroke-width='1.5' "
            "stroke-dasharray='5 3'/>"
        )
    for label, x, y, on_front in points:
        fill, r = ("#D55E00", 6) if on_front else ("#9aa5b1", 4.5)
        cls = "point front" if on_front else "point"
        out.append(
            f"<circle class='{cls}' data-run='{esc(label)}' cx='{sx(x):.1f}' cy='{sy(y):.1f}' "
            f"r='{r}' fill='{fill}'><title>{esc(label)}: {fmt(x)}, {fmt(y)}</title></circle>"
        )
        if on_front:
            out.append(_halo_text(sx(x) + 8, sy(y) - 6, label))
    return "".join(out) + "</svg>"


def interval_chart(
    title: str, rows: Sequence[tuple[str, float, float | None, float | None]], width: int = 620
) -> str:
    """One row per configuration: its mean as a dot and its confidence interval as a bar."""
    row, top, left, right, bottom = 32, 36, 150, 30, 34
    height = top + row * max(1, len(rows)) + bottom
    out = [_open(width, height, title), text(width / 2, 21, title, size=14, font_weight="600")]
    vals = [v for _, m, lo, hi in rows for v in (m, lo, hi) if v is not None]
    if not vals:
        out.append(text(width / 2, height / 2, "no data", fill="#888"))
        return "".join(out) + "</svg>"
    lo_all, hi_all = padded(vals)
    sx = Scale(lo_all, hi_all, left, width - right)
    base = top + row * len(rows)
    for v in ticks(lo_all, hi_all):
        out.append(line(sx(v), top, sx(v), base, "#eee"))
        out.append(text(sx(v), base + 17, fmt(v), size=12))
    for i, (label, mean, lo, hi) in enumerate(rows):
        y = top + i * row + row / 2
        out.append(text(left - 10, y + 4, short(label, 18), size=13, anchor="end"))
        if lo is not None and hi is not None:
            out.append(
                f"<line class='ci' x1='{sx(lo):.1f}' y1='{y:.1f}' x2='{sx(hi):.1f}' y2='{y:.1f}' "
                f"stroke='#0072B2' stroke-width='3'><title>{esc(label)}: 95% CI "
                f"[{fmt(lo)}, {fmt(hi)}]</title></line>"
            )
        out.append(
            f"<circle class='point' cx='{sx(mean):.1f}' cy='{y:.1f}' r='5' fill='#D55E00'>"
            f"<title>{esc(label)}: mean {fmt(mean)}</title></circle>"
        )
    return "".join(out) + "</svg>"

"""The picture in docs/stopping.md: a slow starter ASHA cuts and the forecast scheduler keeps.

Run: python bench/stopping_figure.py [--out docs/img/stopping_slow_starter.svg]

Replays the recorded tiny RT-DETR curves (``bench/curves/rtdetr_recorded.jsonl``, 2 trials at
a time) under ASHA as ``search_spaces/rtdetr.yaml`` first shipped it (grace 3, reduction
factor 2) and under the forecast scheduler's defaults, then draws every trial's ``val/map``
in grey, the best trial that ASHA cut and the forecast scheduler kept in colour, ASHA's cut
as a cross, and the forecast scheduler's reason for keeping it as the caption.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.compare.svg import FONT, Scale, color, line, text, ticks  # noqa: E402
from orchestrator.replay.curves import load_curves  # noqa: E402
from orchestrator.replay.evaluate import final_value  # noqa: E402
from orchestrator.replay.simulate import Policy, SchedulerSpec, replay  # noqa: E402

W, H = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/stopping_slow_starter.svg")
    args = parser.parse_args()
    curves = load_curves(ROOT / "bench/curves/rtdetr_recorded.jsonl")
    asha = SchedulerSpec.of("asha", grace_period=3, reduction_factor=2)
    ours = SchedulerSpec.of("forecast")
    kw = {"metric": "val/map", "mode": "max", "concurrency": 2}
    by_asha = replay(curves, Policy("asha", asha, None), **kw)  # type: ignore[arg-type]
    by_ours = replay(curves, Policy("forecast", ours, None), **kw)  # type: ignore[arg-type]
    finals = [final_value(c, "val/map") or 0.0 for c in curves]
    order = sorted(range(len(curves)), key=lambda i: -finals[i])
    pick = next(
        (i for i in order if by_asha[i].stopped_by and not by_ours[i].stopped_by), order[0]
    )
    series = [[r.get("val/map") for r in c.history] for c in curves]
    n = max(len(s) for s in series)
    x = Scale(1, n, LEFT, W - RIGHT)
    top = max(v for s in series for v in s if v is not None)
    y = Scale(0, top * 1.05, H - BOTTOM, TOP)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' {FONT}>"]
    out.append(f"<rect width='{W}' height='{H}' fill='white'/>")
    for t in ticks(0, top * 1.05):
        out.append(line(LEFT, y(t), W - RIGHT, y(t), "#eee"))
        out.append(text(LEFT - 6, y(t) + 4, f"{t:g}", 11, "end"))
    for e in range(1, n + 1):
        out.append(text(x(e), H - BOTTOM + 16, e, 11))
    out.append(text((LEFT + W - RIGHT) / 2, H - BOTTOM + 34, "epoch", 12))
    mid = (TOP + H - BOTTOM) / 2
    out.append(text(16, mid, "val/map", 12, transform=f"rotate(-90 16 {mid})"))
    for i, s in enumerate(series):
        pts = " ".join(f"{x(k + 1):.1f},{y(v):.1f}" for k, v in enumerate(s) if v is not None)
        hue, width = (color(4), 3) if i == pick else ("#bbb", 1.2)
        out.append(f"<polyline points='{pts}' fill='none' stroke='{hue}' stroke-width='{width}'/>")
    cut = by_asha[pick].reports
    if by_asha[pick].stopped_by:
        cx, cy = x(cut), y(series[pick][cut - 1] or 0)
        out.append(line(cx - 7, cy - 7, cx + 7, cy + 7, "#000", 2.5))
        out.append(line(cx - 7, cy + 7, cx + 7, cy - 7, "#000", 2.5))
        label = f"ASHA grace 3 cuts it here (epoch {cut})"
        out.append(text(cx + 10, cy - 10, label, 12, "start"))
    name = curves[pick].trial
    out.append(
        text(
            LEFT,
            24,
            f"Recorded tiny RT-DETR sweep: {name} ends best ({finals[pick]:.3f}); grey: the other "
            f"{len(curves) - 1} trials",
            13,
            "start",
            font_weight="bold",
        )
    )
    why = by_ours[pick].protected or "kept: its forecast reached every rung's cutoff"
    for k, chunk in enumerate(_wrap(f"forecast scheduler keeps it - {why}", 110)[:3]):
        out.append(text(LEFT, H - 34 + 14 * k, chunk, 11, "start"))
    out.append("</svg>")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({name}: ASHA {by_asha[pick].stopped_by or 'kept'}, forecast kept)")


def _wrap(s: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in s.split():
        if len(cur) + len(word) + 1 > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return [*lines, cur] if cur else lines


if __name__ == "__main__":
    main()

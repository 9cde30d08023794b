"""Line charts as inline SVG, for HTML reports that load nothing when they
are viewed."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 560, 180
# Room for the axis labels.
LEFT, BOTTOM, TOP, RIGHT = 70, 30, 12, 12


def chart(
    lines: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """An SVG chart of each (label, css class, xs, ys) line, sharing one x
    axis over all the xs and one y axis from 0 to the highest value."""
    every_x = [x for _, _, xs, _ in lines for x in xs]
    if len(set(every_x)) < 2:
        return ""
    x0, x1 = min(every_x), max(every_x)
    top = max(max(ys, default=0) for _, _, _, ys in lines) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def point(x: float, y: float) -> str:
        px = LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w
        py = TOP + plot_h - y / top * plot_h
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{_short(top)}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 8}">{_short(x0)}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end">{_short(x1)}</text>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>',
    ]
    for label, css, xs, ys in lines:
        points = " ".join(point(x, y) for x, y in zip(xs, ys, strict=True))
        parts.append(
            f'<polyline class="{escape(css)}" points="{points}"><title>{escape(label)}</title>'
            "</polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"

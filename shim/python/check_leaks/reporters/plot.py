"""Line charts as inline SVG, for HTML reports that load nothing when they
are viewed."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 560, 180
# A bar chart has a bar for each measured run: a few.
BAR_WIDTH = 280
# Room for the axis labels.
LEFT, BOTTOM, TOP, RIGHT = 70, 30, 12, 12


def chart(
    lines: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
    *,
    x_label: str,
    y_label: str,
    from_zero: bool = True,
) -> str:
    """An SVG chart of each (label, css class, xs, ys) line, sharing one x
    axis over all the xs and one y axis up to the highest value, from 0 or,
    without `from_zero`, from the lowest: growth of a few objects a run in
    a heap of thousands is then seen."""
    every_x = [x for _, _, xs, _ in lines for x in xs]
    if len(set(every_x)) < 2:
        return ""
    x0, x1 = min(every_x), max(every_x)
    top = max(max(ys, default=0) for _, _, _, ys in lines)
    bottom = 0 if from_zero else min(min(ys, default=0) for _, _, _, ys in lines)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def point(x: float, y: float) -> str:
        px = LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w
        py = TOP + plot_h - (y - bottom) / ((top - bottom) or 1) * plot_h
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{_short(top)}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">{_short(bottom)}</text>',
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


def bars(values: Sequence[float], *, css: str, x_label: str, y_label: str) -> str:
    """An SVG bar chart of `values`, one bar each, numbered from 1, with
    each value written above its bar."""
    if not values:
        return ""
    top = max(max(values), 0) or 1
    plot_w, plot_h = BAR_WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(values)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {BAR_WIDTH} {HEIGHT}" role="img">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>',
    ]
    for i, value in enumerate(values):
        high = max(value, 0) / top * (plot_h - 14)
        x = LEFT + i * step + step * 0.15
        parts += [
            f'<rect class="{escape(css)}" x="{x:.1f}" y="{TOP + plot_h - high:.1f}" '
            f'width="{step * 0.7:.1f}" height="{high:.1f}"/>',
            f'<text x="{x + step * 0.35:.1f}" y="{TOP + plot_h - high - 3:.1f}" '
            f'text-anchor="middle">{_short(value)}</text>',
            f'<text x="{x + step * 0.35:.1f}" y="{TOP + plot_h + 12:.1f}" '
            f'text-anchor="middle">{i + 1}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)

"""Reports as self-contained HTML pages: no scripts, no external files.
A check's page is `templates/report.html`; a monitor's is
`templates/timeline.html`, with its charts as inline SVG. Each section is
the text report's, escaped."""

from __future__ import annotations

import string
from html import escape
from importlib import resources
from typing import TYPE_CHECKING

from . import plot, text

if TYPE_CHECKING:
    from ..report import LeakReport
    from ..timeline import MonitorReport


def render(report: LeakReport) -> str:
    sections = "\n".join(_section(leak, lines) for leak, lines in text.sections(report))
    lines = text.render(report).splitlines()
    return _page(
        "report.html",
        title=escape(lines[0]),
        stopped=f"<p>{escape(report.stopped)}</p>" if report.stopped else "",
        sections=sections or "<p>Nothing was left behind.</p>",
        footer=escape(lines[-1]),
    )


def _whole_process(report: MonitorReport) -> list[str]:
    """The leaks of the whole process, which no group shows."""
    return [
        f"LEAK: {what}: {words}"
        for what, words in (
            ("file descriptors", report.descriptor_leak),
            ("native memory", report.native_leak),
        )
        if words
    ]


def _section(leak: bool, lines: list[str]) -> str:
    kind = "leak" if leak else "once"
    return f"<section class={kind}><pre>{escape('\n'.join(lines))}</pre></section>"


def render_monitor(report: MonitorReport) -> str:
    lines = text.render_monitor(report).splitlines()
    sections = []
    sections_text = text.monitor_sections(report, brief=False)
    for group, (_, section) in zip(report.groups, sections_text, strict=True):
        chart = "".join(
            plot.chart(
                [(label, group.verdict, group.checkpoints, values)],
                x_label="checkpoint",
                y_label=label,
            )
            for label, values in (("objects", group.objects), ("bytes", group.bytes))
        )
        opened = " open" if group.leak else ""
        sections.append(
            f"<details class={group.verdict}{opened}><summary>{escape(section[0])}</summary>"
            f"{chart}<pre>{escape(chr(10).join(section[1:]))}</pre></details>"
        )
    overview = plot.chart(
        [
            (f"{g.type} at {g.site}", g.verdict, g.checkpoints, g.objects)
            # What stopped before sites were traced is mostly start-up:
            # drawn, it would dwarf the rest.
            for g in report.groups
            if g.verdict != "bounded" or g.site is not None
        ],
        x_label="checkpoint",
        y_label="new objects alive",
    )
    totals = report.totals
    process = plot.chart(
        [
            ("resident bytes", "total", totals.checkpoints, totals.resident_bytes),
            (
                "native bytes",
                "leak" if report.native_leak else "undecided",
                totals.checkpoints,
                totals.native_bytes,
            ),
        ],
        x_label="checkpoint",
        y_label="bytes",
    ) + plot.chart(
        [("new objects alive", "total", totals.checkpoints, totals.new_objects)],
        x_label="checkpoint",
        y_label="new objects alive",
    )
    return _page(
        "timeline.html",
        title=escape(lines[0]),
        subtitle="<br>".join(
            escape(line) for line in [*lines[1:3], *_whole_process(report)] if line
        ),
        overview=overview,
        sections="\n".join(sections) or "<p>Nothing has grown.</p>",
        process=process,
        footer=escape("\n".join(lines[_process_line(lines) :])),
    )


def _process_line(lines: list[str]) -> int:
    """Where the text report's lines on the whole process begin."""
    return next(i for i, line in enumerate(lines) if line.startswith("process at checkpoint"))


def _page(name: str, **values: str) -> str:
    # Read on each call, not at import: reports are rare, imports are not.
    page = resources.files(__package__).joinpath("templates", name)
    # substitute() never looks for placeholders in the values it puts in.
    return string.Template(page.read_text(encoding="utf-8")).substitute(**values)

"""Reports as self-contained HTML pages: no scripts, no external files,
every picture inline SVG. A check's page is `templates/report.html`: each
leak or group a collapsible section, with its holder chain drawn
(`chain`), its growth plotted (`plot`) and the source around its site, then
the text report's lines. A monitor's is `templates/timeline.html`, and a
pytest session's index of leaky tests `templates/index.html`."""

from __future__ import annotations

import linecache
import os
import string
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

# `report` imports this package: its classes are there by the time a
# report is rendered.
from .. import report as model
from . import chain, plot, text

if TYPE_CHECKING:
    from ..report import LeakReport
    from ..timeline import MonitorReport


def render(report: LeakReport) -> str:
    lines = text.render(report).splitlines()
    footer = lines[next(i for i, line in enumerate(lines) if line.startswith("per run: ")) :]
    return _page(
        "report.html",
        title=escape(lines[0]),
        summary=escape(report.summary()),
        verdict="leak" if report else "clean",
        stopped=f"<p>{escape(report.stopped)}</p>" if report.stopped else "",
        sections="\n".join(map(_section, text.sections(report)))
        or "<p>Nothing was left behind.</p>",
        footer="<br>".join(map(escape, footer)),
    )


# Lines of source shown on each side of a site, and sites shown a section.
CONTEXT, SHOWN_SITES = 3, 3


def _section(section: text.Section) -> str:
    """A leak or a group: its first line as the summary, then its holder
    chain, its growth and the source of its site drawn, then its lines."""
    item = section.item
    kind = "leak" if section.leak else "once" if item and item.growth is None else "bounded"
    head, *rest = section.lines
    figures = _figures(item, kind) if item is not None else ""
    sources = "".join(_source(site) for site in _sites(item)[:SHOWN_SITES])
    opened = " open" if section.leak else ""
    return (
        f"<details class={kind}{opened}><summary>{escape(head)}</summary>"
        f"{figures}{sources}<pre>{escape(chr(10).join(rest))}</pre></details>"
    )


def _figures(item: text.Item, kind: str) -> str:
    """The chain of holders, what each measured run left, and the count
    through the confirmation, as far as the kind of leak has them."""
    figures = []
    # What each measured run added, and what the confirmation counted.
    per_run: list[tuple[str, list[int]]]
    match item:
        case model.LeakGroup():
            per_run = [("objects", item.per_run), ("bytes", item.bytes_per_run)]
            through = f"live {item.type} objects"
        case model.ReferenceLeak():
            per_run, through = [("references gained", item.per_run)], "references to it"
        case model.BlockLeak():
            per_run = [("blocks", item.per_run), ("bytes", item.bytes_per_run)]
            through = "live blocks from its line"
        case model.DescriptorLeak():
            per_run, through = [("descriptors", item.per_run)], "open descriptors"
        case model.NativeLeak():
            per_run, through = [("bytes", item.per_run)], "native bytes in use"
    if isinstance(item, model.LeakGroup | model.ReferenceLeak) and item.chain:
        drawing = chain.draw(item.root, item.chain, item.held_by)
        figures.append(_figure("Who holds it, from the root down", drawing))
    bars = "".join(plot.bars(values, css=kind, x_label="run", y_label=y) for y, values in per_run)
    figures.append(_figure("Left by each measured run", bars))
    if item.series is not None:
        series = [(through, kind, item.series.runs, item.series.counts)]
        drawing = plot.chart(series, x_label="runs made", y_label=through, from_zero=False)
        figures.append(_figure("Counted as the runs went on", drawing))
    return f"<div class=figures>{''.join(figures)}</div>"


def _figure(caption: str, drawing: str) -> str:
    if not drawing:
        return ""
    return f"<figure>{drawing}<figcaption>{escape(caption)}</figcaption></figure>"


def _sites(item: text.Item | None) -> list[str]:
    """The checked code's lines that made what leaked."""
    nested = getattr(item, "stacks", None) or getattr(item, "opened", None) or [item]
    sites = [getattr(part, "site", None) for part in nested]
    return list(dict.fromkeys(site for site in sites if site))


def _source(site: str) -> str:
    """The lines around `site`, read from its file, the site's marked."""
    filename, _, number = site.rpartition(":")
    line = int(number)
    lines = linecache.getlines(filename)
    if not 1 <= line <= len(lines):
        return ""
    rows = [
        (n, lines[n - 1].rstrip())
        for n in range(max(1, line - CONTEXT), min(len(lines), line + CONTEXT) + 1)
    ]
    shown = "\n".join(
        f'<span class="{"site" if n == line else "line"}">{n:>5}  {escape(source)}</span>'
        for n, source in rows
    )
    caption = f"<figcaption>{escape(site)}</figcaption>"
    return f"<figure class=source>{caption}<pre>{shown}</pre></figure>"


def render_index(leaky: list[tuple[str, dict[str, Any]]], directory: Path, done: str) -> str:
    """A pytest session's index: each leaky test, worst first, with a link
    to its page in `directory`, what it leaked and how many bytes."""
    rows = []
    for nodeid, outcome in leaky:
        page = next((f for f in outcome.get("files", ()) if f.endswith(".html")), None)
        name = escape(nodeid)
        if page is not None:
            name = f'<a href="{escape(os.path.relpath(page, directory))}">{name}</a>'
        rows.append(
            f"<tr><td>{name}</td><td class=bytes>{outcome['bytes']:,} B</td>"
            f"<td>{escape(outcome['summary'])}</td></tr>"
        )
    return _page(
        "index.html",
        title=f"check_leaks: {len(leaky)} leaking test{'s' * (len(leaky) != 1)}",
        subtitle=escape(done),
        rows="\n".join(rows),
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

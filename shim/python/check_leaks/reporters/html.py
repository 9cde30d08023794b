"""The report as a self-contained HTML page: no scripts, no external files.
The page is `templates/report.html`; each section is the text report's,
escaped."""

from __future__ import annotations

import string
from html import escape
from importlib import resources
from typing import TYPE_CHECKING

from . import text

if TYPE_CHECKING:
    from ..report import LeakReport


def render(report: LeakReport) -> str:
    sections = "\n".join(_section(leak, lines) for leak, lines in text.sections(report))
    lines = text.render(report).splitlines()
    # Read on each call, not at import: reports are rare, imports are not.
    page = resources.files(__package__).joinpath("templates", "report.html")
    # substitute() never looks for placeholders in the values it puts in.
    return string.Template(page.read_text(encoding="utf-8")).substitute(
        title=escape(lines[0]),
        stopped=f"<p>{escape(report.stopped)}</p>" if report.stopped else "",
        sections=sections or "<p>Nothing was left behind.</p>",
        footer=escape(lines[-1]),
    )


def _section(leak: bool, lines: list[str]) -> str:
    kind = "leak" if leak else "once"
    return f"<section class={kind}><pre>{escape('\n'.join(lines))}</pre></section>"

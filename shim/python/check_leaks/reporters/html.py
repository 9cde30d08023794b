"""The report as a self-contained HTML page: no scripts, no external files.
Each section is the text report's, escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from . import text

if TYPE_CHECKING:
    from ..report import LeakReport


def render(report: LeakReport) -> str:
    sections = "\n".join(_section(leak, lines) for leak, lines in text.sections(report))
    lines = text.render(report).splitlines()
    title = escape(lines[0])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
pre {{ white-space: pre-wrap; }}
section {{ border-left: 6px solid #ccc; padding: 0 1em; margin: 1em 0; }}
section.leak {{ border-color: #d33; }}
</style></head>
<body><h1>{title}</h1>
{sections or "<p>Nothing was left behind.</p>"}
<p>{escape(lines[-1])}</p>
</body></html>
"""


def _section(leak: bool, lines: list[str]) -> str:
    kind = "leak" if leak else "once"
    return f"<section class={kind}><pre>{escape('\n'.join(lines))}</pre></section>"

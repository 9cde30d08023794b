"""A report's renderers, one module per output format, each with a
`render(report)`. They read the model in `report.py` and never change it.
`plot` and `chain` draw the HTML pages' pictures as inline SVG.

The modules are named after their formats; imports in them are absolute, so
`import json` in `json.py` is the stdlib's."""

from . import chain, dot, html, json, plot, text

__all__ = ["chain", "dot", "html", "json", "plot", "text"]

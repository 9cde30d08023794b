"""The report as JSON: every field of the model, as `dataclasses.asdict`
gives it."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..report import LeakReport


def render(report: LeakReport) -> str:
    return json.dumps(dataclasses.asdict(report), indent=2)

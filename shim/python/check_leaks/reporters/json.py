"""A report as JSON, a check's or a monitor's: every field of the model,
as `dataclasses.asdict` gives it."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..report import LeakReport
    from ..timeline import MonitorReport


def render(report: LeakReport | MonitorReport) -> str:
    return json.dumps(dataclasses.asdict(report), indent=2)

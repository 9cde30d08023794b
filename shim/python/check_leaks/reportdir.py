"""A monitor's report directory: private, written atomically, with a
history and the reports of forked workers.

    DIR/report.txt, report.json, report.html   the latest report
    DIR/history/<time>-<checkpoint>.json       every report written, the last HISTORY kept
    DIR/<pid>/...                              the same for each forked worker
    DIR/trigger                                touch it: every process writes a report
    DIR/.owner                                 the pid of the process writing DIR/report.*

A report holds reprs of what the program holds, so the directory is made
0700 and each file 0600. Each file is written to a temporary name and
renamed over the old one, so a reader never sees half a report, even if the
process is killed while writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .timeline import MonitorReport

TRIGGER = "trigger"
# Holds the pid of the process that writes into the top directory.
OWNER = ".owner"
# Reports kept in the history.
HISTORY = 100


def prepare(directory: pathlib.Path) -> None:
    """Make `directory` (and its parents) if missing, readable only by us.
    Raises OSError with the path in its words if it cannot be."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)


def claim(directory: pathlib.Path) -> pathlib.Path:
    """Where this process writes: `directory`, or, if another running
    process writes there already (a server's other worker), a subdirectory
    named by this process's pid."""
    prepare(directory)
    owner = directory / OWNER
    for _ in range(2):
        try:
            fd = os.open(owner, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                pid = int(owner.read_text(encoding="ascii") or "0")
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid():
                return directory
            if pid and _alive(pid):
                mine = directory / str(os.getpid())
                prepare(mine)
                return mine
            owner.unlink(missing_ok=True)  # left by a process that is gone
            continue
        with open(fd, "w", encoding="ascii") as file:
            file.write(str(os.getpid()))
        return directory
    raise OSError(f"cannot claim report directory {directory}")


def write(directory: pathlib.Path, report: MonitorReport) -> pathlib.Path:
    """Write `report` into `directory` as text, JSON and HTML, and into its
    history; returns the text report's path."""
    prepare(directory)
    workers = _workers(directory)
    if workers:
        report = dataclasses.replace(report, workers=workers)
    json_text = report.to_json()
    for name, text in (
        ("report.txt", str(report) + "\n"),
        ("report.json", json_text),
        ("report.html", report.to_html()),
    ):
        replace_file(directory / name, text)
    history = directory / "history"
    history.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    replace_file(history / f"{stamp}-{report.checkpoints:06d}.json", json_text)
    for old in sorted(history.glob("*.json"))[:-HISTORY]:
        old.unlink(missing_ok=True)
    return directory / "report.txt"


def trigger_stamp(directory: pathlib.Path) -> int | None:
    """When the trigger file was last touched, in ns; None if it is absent."""
    try:
        return (directory / TRIGGER).stat().st_mtime_ns
    except OSError:
        return None


def replace_file(path: pathlib.Path, text: str) -> None:
    """Write `text` to `path`, 0600, whole or not at all."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def await_workers(directory: pathlib.Path, since: int, seconds: float) -> None:
    """Wait until each running worker's report is newer than `since` (ns),
    or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending = [
            child
            for child in directory.iterdir()
            if child.name.isdigit() and child.is_dir() and _alive(int(child.name))
            if _mtime(child / "report.txt") <= since
        ]
        if not pending:
            return
        time.sleep(0.1)


def _mtime(path: pathlib.Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _workers(directory: pathlib.Path) -> list[str]:
    """Each forked worker's report, relative to `directory`, and whether the
    worker still runs."""
    found = []
    for child in sorted(directory.iterdir(), key=lambda p: p.name):
        if child.name.isdigit() and child.is_dir():
            state = "running" if _alive(int(child.name)) else "exited"
            written = "" if (child / "report.txt").exists() else ", no report yet"
            found.append(f"{child.name}/report.txt (pid {child.name}, {state}{written})")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

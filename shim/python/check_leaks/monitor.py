"""`Monitor`: what a long-running program keeps making and never frees,
checkpoint after checkpoint, with no function to repeat.

A checkpoint is a collection and one walk of the live heap in Rust
(`_shim.Checkpoints`), which keeps only counters: nothing the monitor keeps
is an object it would then count. Tracing costs several times the plain
speed, so with `sites="auto"` it begins only once some type's new objects
have grown through the later half of `timeline.SITE_CHECKPOINTS`
checkpoints; from then on, new objects carry their allocation site.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import gc
import inspect
import os
import pathlib
import signal as signals
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any, Literal, Self

from . import _shim, reportdir, timeline
from .checker import _collect, _snapshots, clear_caches
from .redact import redacting
from .saferepr import type_name_of_class
from .timeline import MonitorReport

# How often the monitor's thread looks for a trigger file, in seconds.
TRIGGER_POLL = 0.5
# How long the top process waits for its workers' reports to a trigger.
WORKER_WAIT = 30.0
# Frames kept per allocation traceback while sites are traced. Tracing's cost
# grows with them: uvicorn serving Starlette on the debug build answers 37
# requests a second with 32, 186 with 8, 526 with 1, and 1,580 untraced. The
# site is the innermost frame; 8 reach the application's own line through
# Starlette's handlers.
TRACEBACK_FRAMES = 8

# Every started monitor, so that a forked child can start each afresh.
_STARTED: weakref.WeakSet[Monitor] = weakref.WeakSet()


class Monitor:
    """Checkpoints of a long-running program, and the report of what grows.

    Count units of work with `done()` (the middleware counts requests,
    `task` counts calls) and take a checkpoint every `every` units, or let
    a thread take one every `interval` seconds (`unit="second"`). A group
    of new objects (type and allocation site) that goes on growing through
    `timeline.VERDICT_CHECKPOINTS` checkpoints or more is a leak; one that
    stops, as a cache does once full, is bounded.

    With a `report_dir`, the report is written there every `report_every`
    seconds, when `signal` arrives, when the directory's `trigger` file is
    touched, and when the monitor stops; each forked child process writes
    its own, in a subdirectory named by its pid.
    """

    def __init__(
        self,
        name: str = "monitored program",
        *,
        unit: str = "request",
        every: int | None = None,
        interval: float | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        report_every: float | None = None,
        signal: int | str | None = None,
        sites: Literal["auto", "always", "never"] = "auto",
        redact: bool = True,
        ignore: Collection[type | str] = (),
    ) -> None:
        if every is not None and every < 1:
            raise ValueError(f"every must be at least 1 unit, got {every}")
        for what, seconds in (("interval", interval), ("report_every", report_every)):
            if seconds is not None and not 0 < seconds < float("inf"):
                raise ValueError(f"{what} must be a positive number of seconds, got {seconds}")
        if sites not in ("auto", "always", "never"):
            raise ValueError(f"sites must be 'auto', 'always' or 'never', got {sites!r}")
        if report_every is not None and report_dir is None:
            raise ValueError("report_every needs a report_dir to write to")
        self.name = name
        self.unit = unit
        self._every = every
        self._interval = interval
        # The trigger file is in the top directory; a forked child writes
        # into a subdirectory of it.
        self._top = pathlib.Path(report_dir) if report_dir is not None else None
        self._dir = self._top
        self._report_every = report_every
        self._signal = parse_signal(signal) if signal is not None else None
        self._sites = sites
        self._redact = redact
        self._ignore = {t if isinstance(t, str) else type_name_of_class(t) for t in ignore}
        self._lock = threading.RLock()
        self._checkpoints: _shim.Checkpoints | None = None
        self._units = 0
        self._since = 0
        self._spent = 0.0  # seconds spent in checkpoints
        self._tracing: list[Any] = []  # what to undo at stop: precise mode, tracemalloc
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._previous_handler: Any = None
        self._trigger: int | None = None

    # -- lifecycle ------------------------------------------------------

    def start(self) -> Self:
        """Begin: what exists now is never counted. Raises RuntimeError on
        an interpreter without the trace-refs table (not the debug flavour)."""
        if self._checkpoints is not None:
            raise RuntimeError("this Monitor has already started")
        _snapshots()  # the one check for sys.getobjects(), with its message
        if self._top is not None:
            self._dir = reportdir.claim(self._top)
            self._trigger = reportdir.trigger_stamp(self._top)
        if self._signal is not None:
            # Only the main thread may; a signal arriving then sets a flag,
            # and the monitor's thread writes the report.
            self._previous_handler = signals.signal(self._signal, self._on_signal)
        _rehearse_a_report()
        _collect()
        self._checkpoints = _shim.Checkpoints()
        if self._sites == "always":
            self._trace()
        _STARTED.add(self)
        if self._top is not None:
            # A server stopped by its own signal handling (the middleware's
            # case) still leaves its last report.
            atexit.register(self._at_exit)
        self._start_thread()
        return self

    def stop(self) -> MonitorReport:
        """Stop, write the last report if there is a report dir, and return it."""
        self._require()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        if self._signal is not None and threading.current_thread() is threading.main_thread():
            signals.signal(self._signal, self._previous_handler or signals.SIG_DFL)
        with self._lock:
            report = self.report()
            if self._dir is not None:
                self._write(report)
            for undo in reversed(self._tracing):
                undo()
            self._tracing.clear()
        _STARTED.discard(self)
        atexit.unregister(self._at_exit)
        self._checkpoints = None
        return report

    def _at_exit(self) -> None:
        if self._checkpoints is not None:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- counting -------------------------------------------------------

    def done(self, units: int = 1) -> None:
        """Count `units` more units of work done; take a checkpoint if
        `every` units were done since the last one."""
        with self._lock:
            if self._checkpoints is None:
                return
            self._units += units
            self._since += units
            if self._every is not None and self._since >= self._every:
                self._checkpoint()

    def checkpoint(self) -> None:
        """Take a checkpoint now."""
        self._require()
        with self._lock:
            self._checkpoint()

    def task[**P, R](self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a task function, sync or async: each call done counts
        one unit."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    return await func(*args, **kwargs)
                finally:
                    self.done()

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            finally:
                self.done()

        return run

    # -- reports --------------------------------------------------------

    def report(self) -> MonitorReport:
        """What grows now: a checkpoint is taken, and the groups are judged
        on every checkpoint so far."""
        checkpoints = self._require()
        with self._lock, redacting(self._redact):
            _collect()
            self._checkpoint()
            report = timeline.build(
                checkpoints, target=self.name, unit=self.unit, ignore=self._ignore
            )
        return dataclasses.replace(report, redacted=self._redact, monitor_seconds=self._spent)

    def write_report(self) -> pathlib.Path:
        """Write the report into the report dir now; returns report.txt's path."""
        if self._dir is None:
            raise RuntimeError("this Monitor has no report_dir to write to")
        return self._write(self.report())

    @property
    def report_dir(self) -> pathlib.Path | None:
        """Where this process writes its reports."""
        return self._dir

    # -- internals ------------------------------------------------------

    def _require(self) -> _shim.Checkpoints:
        if self._checkpoints is None:
            raise RuntimeError("start the Monitor first (monitor.start() or `with monitor:`)")
        return self._checkpoints

    def _checkpoint(self) -> None:
        checkpoints = self._require()
        began = time.perf_counter()
        self._since = 0
        # The type method cache keeps each name a C call looked up by a
        # new str ("dst" for each datetime.timetuple()), up to 4,096.
        clear_caches()
        # The young generations only: a full collection of a million objects
        # takes 43 ms, this one 7. Cyclic garbage that reached the oldest
        # generation is counted until the program's own collector frees it,
        # which a count sees as a fall: noise, not growth.
        gc.collect(1)
        checkpoints.checkpoint(float(self._units), bool(self._tracing))
        if self._sites != "never":
            growing = timeline.growing_types(checkpoints)
            if growing:
                checkpoints.watch(growing)
                if not self._tracing:
                    self._trace()
        self._spent += time.perf_counter() - began

    def _trace(self) -> None:
        """Give new objects their allocation site from now on: precise
        mode, so that none is recycled with a stale one, and tracemalloc."""
        precise = _shim.precise_tracebacks(True)
        self._tracing.append(lambda: _shim.precise_tracebacks(bool(precise)))
        if not tracemalloc.is_tracing():
            tracemalloc.start(TRACEBACK_FRAMES)
            self._tracing.append(tracemalloc.stop)
        else:
            self._tracing.append(lambda: None)

    def _write(self, report: MonitorReport) -> pathlib.Path:
        assert self._dir is not None
        return reportdir.write(self._dir, report)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._wanted.set()

    def _start_thread(self) -> None:
        if self._interval is None and self._dir is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="check_leaks monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        now = time.monotonic()
        next_checkpoint = now + self._interval if self._interval else None
        next_report = now + self._report_every if self._report_every else None
        while not self._stop.is_set():
            deadlines = [d for d in (next_checkpoint, next_report) if d is not None]
            wait = min([TRIGGER_POLL, *(d - time.monotonic() for d in deadlines)])
            wanted = self._wanted.wait(max(0.0, wait))
            if self._stop.is_set():
                break
            try:
                now = time.monotonic()
                if next_checkpoint is not None and now >= next_checkpoint:
                    with self._lock:
                        self._checkpoint()
                    next_checkpoint = now + (self._interval or 0)
                due = next_report is not None and now >= next_report
                if due:
                    next_report = now + (self._report_every or 0)
                if self._top is not None:
                    stamp = reportdir.trigger_stamp(self._top)
                    if stamp is not None and stamp != self._trigger:
                        self._trigger, wanted = stamp, True
                        if self._dir == self._top:
                            # The workers answer the same trigger: list theirs.
                            reportdir.await_workers(self._top, stamp, WORKER_WAIT)
                if wanted or due:
                    self._wanted.clear()
                    self.write_report()
            except Exception as error:  # the program must run on whatever happens here
                _warn(f"check_leaks monitor: {type(error).__name__}: {error}")

    def _after_fork(self) -> None:
        """In a forked child: begin afresh, as a process of its own, and
        write reports into a subdirectory named by its pid."""
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._units = self._since = 0
        self._spent = 0.0
        if self._top is not None:
            self._dir = self._top / str(os.getpid())
            reportdir.prepare(self._dir)
        self._checkpoints = _shim.Checkpoints()
        self._start_thread()


def _rehearse_a_report() -> None:
    """Build and render a report before the start: what the first report
    imports and caches for good (importlib.resources' readers, the
    templates) would be new objects at every later checkpoint, a step that
    looks like growth."""
    report = timeline.build(_shim.Checkpoints(), target="", unit="")
    report.to_html(), report.to_json(), str(report)


def parse_signal(value: int | str) -> int:
    """A signal by number, or by name with or without SIG ("SIGUSR2",
    "USR2", "SIGRTMIN+2"). ValueError if there is no such signal."""
    if isinstance(value, int):
        return int(signals.Signals(value)) if value in signals.valid_signals() else _bad(value)
    name = value.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    base, plus, offset = name.partition("+")
    number = getattr(signals, base, None)
    if not isinstance(number, int) or (plus and not offset.isdigit()):
        return _bad(value)
    number += int(offset) if plus else 0
    if number not in signals.valid_signals() or number in (signals.SIGKILL, signals.SIGSTOP):
        return _bad(value)
    return number


def _bad(value: object) -> int:
    raise ValueError(f"no such signal: {value!r} (try SIGUSR2, USR1 or SIGRTMIN+1)")


def _warn(text: str) -> None:
    try:
        os.write(2, (text + "\n").encode(errors="replace"))
    except OSError:
        pass


def _after_fork_in_child() -> None:
    for monitor in list(_STARTED):
        if monitor._checkpoints is not None:
            monitor._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

"""The check window: run code in precise mode with tracemalloc on, and record
the live heap between runs.

Like regrtest's -R, warm-up runs come first, so that import caches and lazy
initialisation settle before anything is measured. Every record is kept in
Rust (`Snapshots`), so the checker creates no Python object that outlives a
run and never reports itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import sys
import tracemalloc
import types
from collections.abc import Callable, Collection, Iterator
from types import TracebackType
from typing import Any, Literal, Self, overload

from . import _shim, native, verdict
from .growth import next_batch
from .report import HARNESS, Candidates, LeakReport, build_report, gather

# Runs before measuring, and measured runs, unless told otherwise: the one
# source of these defaults for the API, the CLI and the pytest plugin.
WARMUP = 2
REPEAT = 3
# Frames kept per allocation traceback.
TRACEBACK_FRAMES = 32
# Runs in all, the measured ones included, through which what grew in every
# measured run must go on growing to be called a leak: a cache that fills
# within half of them is seen to stop (see `growth`).
MAX_RUNS = 500
# A check's runs may take this many times its first run, plus this many
# seconds, in all. mypy.api.run's caches stop growing by its 30th call, which
# takes 60 to see; its first run takes 2 s, and 50 times that allowed 33.
TIME_MULTIPLE = 100.0
TIME_ALLOWANCE = 5.0
# Native bytes a watched block may add without a native leak: tracemalloc,
# started and stopped around the block, leaves malloc's heap up to 136 bytes
# off either way by itself (a check's runs are untraced, and need none).
WATCH_NATIVE_SLACK = 256
# The allowance for one test of a suite, where a leaky test should cost
# little more than its runs: a test of a few milliseconds still gets a
# couple of hundred runs.
TEST_TIME_ALLOWANCE = 1.0


def check(
    func: Callable[..., object],
    /,
    *args: Any,
    warmup: int = WARMUP,
    repeat: int = REPEAT,
    ignore: Collection[type | str] = (),
    max_runs: int = MAX_RUNS,
    time_multiple: float = TIME_MULTIPLE,
    time_allowance: float = TIME_ALLOWANCE,
    **kwargs: Any,
) -> LeakReport:
    """Run `func(*args, **kwargs)` `warmup` times, then `repeat` more times
    while recording the heap, and report what each run left behind.

    A leak is what grew in every measured run and goes on growing: a group
    of objects (same type and allocation line), references on an existing
    object, raw blocks or descriptors. What grew in every measured run is
    followed while the code runs on, up to `max_runs` runs in all: what
    stops growing, as a cache does once full, is not a leak, and neither is
    a group that fills a cache with a bound. A group that did not grow in
    every run is reported as a one-time allocation. The untraced runs may
    take `time_multiple` times the first one plus `time_allowance` seconds
    in all; code that slows down run after run is stopped and said to. A
    run that raises after the measured ones ends them. Objects of
    the types in `ignore` (classes, or qualified names such as "dict" or
    "app.Session") are left out.
    """
    if warmup < 0 or repeat < 1:
        raise ValueError(f"need warmup >= 0 and repeat >= 1, got warmup={warmup}, repeat={repeat}")
    if max_runs < repeat:
        raise ValueError(f"need max_runs >= repeat, got max_runs={max_runs}, repeat={repeat}")
    snapshots = _snapshots()
    stopwatch = _shim.Stopwatch(time_multiple, time_allowance)
    target = _name_of(func)
    # Made once, before anything is recorded: one object older than the runs.
    call = functools.partial(stopwatch.run, functools.partial(func, *args, **kwargs))
    try:
        runs, native = _level(call, stopwatch, warmup=warmup, repeat=repeat)
    except _Halted as halted:
        return LeakReport.halted(target=target, warmup=warmup, why=halted.why, signs=halted.signs)
    if runs is not None:
        return LeakReport.level(
            target=target, warmup=warmup, runs=runs, of=repeat, native_deltas=native
        )
    stopwatch.new_phase()
    try:
        return _explain(
            call, stopwatch, snapshots, target, warmup, repeat, ignore, max_runs, native
        )
    except _Halted as halted:
        return LeakReport.halted(target=target, warmup=warmup, why=halted.why, signs=halted.signs)


class _Halted(Exception):
    """The check must stop before its measured runs are made."""

    def __init__(self, why: str, signs: list[str]) -> None:
        super().__init__(why)
        self.why = why
        self.signs = signs


def _explain(
    call: Callable[[], object],
    stopwatch: _shim.Stopwatch,
    snapshots: _shim.Snapshots,
    target: str,
    warmup: int,
    repeat: int,
    ignore: Collection[type | str],
    max_runs: int,
    native: list[int],
) -> LeakReport:
    """The traced runs that say what grew, where it was made and who holds
    it; then the untraced runs that confirm it goes on growing. `native` is
    what the untraced runs before did to the native bytes."""
    with _shim.precise_tracebacks(True), contextlib.ExitStack() as window:

        def record(left: int) -> bool:
            if left == repeat:
                # Only what the measured runs make needs a traceback: the
                # warm-ups run untraced, several times faster.
                window.enter_context(_tracing())
                # As many as asked for, each up to fifty times slower than
                # untraced: not counted against the budget.
                stopwatch.new_phase(counted=False)
                # Garbage made while tracing starts is not the runs'.
                _collect()
            snapshots.record()
            return True

        hits = _runs(call, stopwatch, warmup, repeat, record)
        # Inside the window: tracemalloc forgets every trace when it stops.
        evidence = gather(snapshots)
        recycled = _recycled_since(hits)
        if not evidence.block_leaks:
            # Only raw blocks are counted through tracemalloc's traces, and
            # an untraced run is several times faster.
            window.close()
        report, candidates = build_report(
            evidence,
            target=target,
            warmup=warmup,
            ignore=ignore,
            recycled=recycled,
            native=native,
        )
        # The evidence keeps the whole heap alive, and with it whatever a
        # cache would evict as the code runs on.
        del evidence
        return _confirm(call, stopwatch, snapshots, report, candidates, max_runs)


def _confirm(
    call: Callable[[], object],
    stopwatch: _shim.Stopwatch,
    snapshots: _shim.Snapshots,
    report: LeakReport,
    candidates: Candidates,
    max_runs: int,
) -> LeakReport:
    """Run on, untraced but for raw blocks, in batches each a quarter longer
    than the runs before, and count what the measured runs saw grow, until
    all of it has stopped growing, `max_runs` runs are made, or the time
    budget is spent (see `growth`). Every count is kept in the probe: no
    object made here outlives a batch, so none is counted."""
    if not candidates:
        return report
    probe = _shim.Probe(candidates.types, candidates.objects)
    stopwatch.new_phase()
    probe.sample(report.runs, snapshots.trace_counts(candidates.block_keys))
    why = None
    while probe.runs < max_runs and not verdict.all_stopped(probe, candidates):
        left = batch = min(next_batch(probe.runs), max_runs - probe.runs)
        failed = False
        while left:
            why = stopwatch.halt()
            if why is not None:
                break
            try:
                call()
            except Exception as error:
                # Code that cannot run on, such as a test that fails once
                # what it stacks up is deep enough, is judged by the counts
                # taken so far; what the failed run left is not counted.
                why = f"stopped after {len(stopwatch) - 1} runs: the next one {_failure(error)}"
                failed = True
                break
            left -= 1
        if not failed:
            _collect()
            probe.sample(probe.runs + batch - left, snapshots.trace_counts(candidates.block_keys))
        if why is not None:
            break
    report = verdict.apply(report, candidates, probe, stopped=why)
    return _where_in_c(call, report, runs=report.runs)


def _where_in_c(call: Callable[[], object], report: LeakReport, runs: int) -> LeakReport:
    """`report` with its confirmed native and descriptor leaks explained by
    more runs: which C frames allocated the memory, which call opened each
    descriptor, and the checked code's line that called them."""
    if report.native_leak:
        stacks, why = native.explain_memory(call, runs)
        explained = dataclasses.replace(report.native_leak, stacks=stacks, unexplained=why)
        report = dataclasses.replace(report, native_leak=explained)
    if report.descriptor_leak:
        opened = native.explain_descriptors(call, report.target)
        located = dataclasses.replace(report.descriptor_leak, opened=opened)
        report = dataclasses.replace(report, descriptor_leak=located)
    return report


class RunFailed(Exception):
    """What a harness raises to end the runs when one fails (the pytest
    plugin's failed test); its str() says how, in words."""


def _failure(error: Exception) -> str:
    """What a failed run raised, in one line, whatever its str() does."""
    if isinstance(error, RunFailed):
        return str(error)
    try:
        words = str(error).strip().splitlines()[-1][:200] if str(error).strip() else ""
    except Exception:
        words = ""
    return f"raised {type(error).__name__}" + (f": {words}" if words else "")


def _level(
    call: Callable[[], object], stopwatch: _shim.Stopwatch, *, warmup: int, repeat: int
) -> tuple[int | None, list[int]]:
    """The same runs against cheap counters only, with no tracing: the
    measured runs made if they show no sign of any leak the full check can
    report (see `_shim.Tally`), None if they show one; and how much each run
    changed the native bytes, which only an untraced run can tell. Only code
    that shows a sign pays for the full check and its explanation."""
    try:
        tally = _shim.Tally()
    except RuntimeError:
        return None, []

    signs = False

    def record(left: int) -> bool:
        nonlocal signs
        # The table is walked at the first two records and the last two,
        # and after a run that showed a sign, so that the next one's signs
        # are known in full (a native count moved by the first run alone
        # must not make all the others); positional: a keyword's name
        # tuple would be one more reference on the stack.
        tally.record(left >= repeat - 1 or left <= 1 or signs)
        # A leak grows in every measured run, so a first one that shows no
        # sign proves there is none: the other runs are not needed.
        signs = bool(tally.signs())
        return left == repeat or signs

    with _shim.precise_tracebacks(True), _only_new_objects_collected():
        try:
            hits = _runs(call, stopwatch, warmup, repeat, record)
        except _Halted as halted:
            halted.signs = tally.signs()
            raise
        # A recycled object skipped the allocator the counters watch.
        if tally.signs() or _recycled_since(hits):
            return None, tally.native_deltas()
        return len(tally) - 1, tally.native_deltas()


def _runs(
    call: Callable[[], object],
    stopwatch: _shim.Stopwatch,
    warmup: int,
    repeat: int,
    record: Callable[[int], bool],
) -> dict[str, int]:
    """The warm-ups, then a collection and `record(repeat)`; then each
    measured run, a collection and `record(runs left)`, until none is left
    or `record` says to stop (returns False). Returns the freelists' hits
    counted before the first record. Raises `_Halted` if `stopwatch` says
    the check must stop."""
    for _ in range(warmup):
        _go_on(stopwatch)
        call()
    _collect()
    hits = _hits()
    record(repeat)
    # A counter, not a `for` loop: a loop's iterator would be alive from
    # run 1 on, an object and a reference the checker itself left behind.
    runs_left = repeat
    while runs_left:
        _go_on(stopwatch)
        call()
        _collect()
        runs_left -= 1
        if not record(runs_left):
            break
    return hits


def _go_on(stopwatch: _shim.Stopwatch) -> None:
    why = stopwatch.halt()
    if why is not None:
        raise _Halted(why, [])


@contextlib.contextmanager
def _only_new_objects_collected() -> Iterator[None]:
    """Freeze what is alive before the runs, so that collections
    walk only what the runs made: a debug build's full collection validates
    the whole oldest generation, 20 ms on a million objects. Frozen garbage
    stays as it was, so the counters still see anything the runs change.
    Not where the program froze objects itself: thawing would thaw those."""
    if gc.get_freeze_count():
        yield
        return
    try:
        gc.freeze()
        yield
    finally:
        gc.unfreeze()


class watch:
    """`with check_leaks.watch() as w: ...` then `w.report`: what the block
    left behind. A single run cannot tell a leak from a one-time cache; use
    `check()` with repeats for that."""

    report: LeakReport | None

    def __init__(self, name: str = "watched block", ignore: Collection[type | str] = ()) -> None:
        self._name = name
        self._ignore = ignore
        self._snapshots = _snapshots()
        self._hits: dict[str, int] = {}
        self._native: int | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._window = contextlib.ExitStack()
        self.report = None

    @overload
    def _edge(self) -> Self: ...

    @overload
    def _edge(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def _edge(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> Self | None:
        # One function for both edges of the block: the frame that runs it is
        # alive at both records, holding its code and function, so the
        # checker's own frame adds no reference between them (an __exit__
        # apart from __enter__ did, to both). Nothing that outlives a
        # statement is made before the second record.
        if self._state == "closed":
            raise RuntimeError("a check_leaks.watch() window is used once; make a new one")
        if self._state == "new":
            self._state = "open"
            # Read before tracing starts and after it stops: tracemalloc's
            # own tables are native memory.
            self._native = None if tracemalloc.is_tracing() else _native_before_tracing()
            self._window.enter_context(_precise_window())
            _collect()
            self._hits = _hits()
            self._snapshots.record()
            return self
        self._state = "closed"
        if exc_type is None:
            _collect()
            self._snapshots.record()
        # Closes precise mode and tracing, which stay on from the first edge.
        with self._window:
            if exc_type is not None:
                return None
            recycled = _recycled_since(self._hits)
            evidence = gather(self._snapshots)
        now = _shim.native_bytes()
        native = [] if self._native is None or now is None else [now - self._native]
        self.report, _ = build_report(
            evidence,
            target=self._name,
            warmup=0,
            ignore=self._ignore,
            recycled=recycled,
            native=native,
            native_slack=WATCH_NATIVE_SLACK,
        )
        return None

    __enter__ = __exit__ = _edge


def _native_before_tracing() -> int | None:
    """The native bytes, read after tracemalloc has started and stopped
    once in this process: its first start leaves 432 bytes of its own
    behind for good."""
    if not _TRACED_ONCE:
        tracemalloc.start()
        tracemalloc.stop()
        _TRACED_ONCE.append(True)
    return _shim.native_bytes()


# Whether tracemalloc has been started in this process (see above).
_TRACED_ONCE: list[bool] = []


@contextlib.contextmanager
def _precise_window() -> Iterator[None]:
    """Precise mode and tracemalloc on; the previous state of both after."""
    with _shim.precise_tracebacks(True), _tracing():
        yield


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    """tracemalloc on; off again after, unless it was on before."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(TRACEBACK_FRAMES)
    _meet_every_file_name()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def _meet_every_file_name() -> None:
    """tracemalloc keeps a reference to each code file name it meets in a
    traceback, from then until it stops. Met first during a run, that
    reference looked like one the run leaked on the name. So each file name
    of live code is met now, before the first record: an allocation is made
    in code given that name."""
    allocate = compile("object()", "", "eval")
    # Typeshed leaves out sys.getobjects(limit, type), a trace-refs build's.
    codes: list[types.CodeType] = sys.getobjects(0, types.CodeType)  # type: ignore[attr-defined]
    for name in {code.co_filename for code in codes}:
        eval(allocate.replace(co_filename=name))


def _snapshots() -> _shim.Snapshots:
    # Only the debug flavour lists every live object.
    if not hasattr(sys, "getobjects"):
        raise RuntimeError(
            "the leak checker needs sys.getobjects(), which only the debug flavour "
            "has (--with-trace-refs); build it with `cargo xtask build-python`"
        )
    return _shim.Snapshots(list(HARNESS))


def _hits() -> dict[str, int]:
    return {kind: info.hits for kind, info in _shim.freelists().items()}


def _recycled_since(hits: dict[str, int]) -> dict[str, int]:
    """Per kind, the objects recycled since `hits` were counted. Precise mode
    keeps this empty unless the checked code switches a kind back on (or, in
    the free-threaded build, runs on a thread the counts do not see)."""
    return {kind: now - hits[kind] for kind, now in _hits().items() if now != hits[kind]}


def _collect() -> None:
    clear_caches()
    # Finalizers can free more objects on the next pass; stop when one frees none.
    for _ in range(3):
        if not gc.collect():
            break


def clear_caches() -> None:
    """Empty the interpreter's caches that hold new objects for a while."""
    # The type method cache holds the attribute names of recent lookups from
    # C, keyed by pointer, so it grows with fresh name strings; regrtest -R
    # clears it before each measurement too.
    sys._clear_internal_caches()
    # struct keeps a compiled Struct per format it has seen, up to 100; regrtest
    # -R clears that cache too.
    struct = sys.modules.get("_struct")
    if struct is not None:
        struct._clearcache()


def _name_of(func: Callable[..., object]) -> str:
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}" if module else name

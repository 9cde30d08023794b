"""The check window: run code in precise mode with tracemalloc on, and record
the live heap between runs.

Like regrtest's -R, warm-up runs come first, so that import caches and lazy
initialisation settle before anything is measured. Every record is kept in
Rust (`Snapshots`), so the checker creates no Python object that outlives a
run and never reports itself.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
import tracemalloc
import types
from collections.abc import Callable, Collection, Iterator
from types import TracebackType
from typing import Any, Literal, Self, overload

from . import _shim
from .report import HARNESS, LeakReport, build_report, gather

# Runs before measuring, and measured runs, unless told otherwise: the one
# source of these defaults for the API, the CLI and the pytest plugin.
WARMUP = 2
REPEAT = 3
# Frames kept per allocation traceback.
TRACEBACK_FRAMES = 32
# Extra runs that must each add a block before raw memory that grew in every
# measured run is called a leak.
CONFIRM_RUNS = 8


def check(
    func: Callable[..., object],
    /,
    *args: Any,
    warmup: int = WARMUP,
    repeat: int = REPEAT,
    ignore: Collection[type | str] = (),
    **kwargs: Any,
) -> LeakReport:
    """Run `func(*args, **kwargs)` `warmup` times, then `repeat` more times
    while recording the heap, and report what each run left behind.

    A leak is a group of objects (same type and allocation line) that grows
    with every measured run; a group that does not is reported as a one-time
    allocation, such as a cache filled on first use. Objects of the types in
    `ignore` (classes, or qualified names such as "dict" or "app.Session")
    are left out.
    """
    if warmup < 0 or repeat < 1:
        raise ValueError(f"need warmup >= 0 and repeat >= 1, got warmup={warmup}, repeat={repeat}")
    snapshots = _snapshots()
    # Made once, before anything is recorded: one object older than the runs.
    call = functools.partial(func, *args, **kwargs)
    runs = _level(call, warmup=warmup, repeat=repeat)
    if runs is not None:
        return LeakReport.level(target=_name_of(func), warmup=warmup, runs=runs, of=repeat)

    with _shim.precise_tracebacks(True), contextlib.ExitStack() as window:

        def record(left: int) -> bool:
            if left == repeat:
                # Only what the measured runs make needs a traceback: the
                # warm-ups run untraced, several times faster.
                window.enter_context(_tracing())
                # Garbage made while tracing starts is not the runs'.
                _collect()
            snapshots.record()
            return True

        hits = _runs(call, warmup, repeat, record)
        # Inside the window: tracemalloc forgets every trace when it stops.
        evidence = gather(snapshots)
        if evidence.unowned_blocks():
            # A C cache that keeps one more raw block a run, up to a few,
            # looks like a leak for a while (numpy keeps up to 7 small
            # arrays); a leak goes on growing. The evidence lets go of the
            # heap first: it would keep alive what a cache evicts.
            del evidence
            runs_left = CONFIRM_RUNS
            while runs_left:
                call()
                runs_left -= 1
            _collect()
            snapshots.confirm_traces(CONFIRM_RUNS)
            evidence = gather(snapshots)
        recycled = _recycled_since(hits)
    return build_report(
        evidence,
        target=_name_of(func),
        warmup=warmup,
        ignore=ignore,
        recycled=recycled,
    )


def _level(call: Callable[[], object], *, warmup: int, repeat: int) -> int | None:
    """The same runs against cheap counters only, with no tracing: the
    measured runs made if they show no sign of any leak the full check can
    report (see `_shim.Tally`), None if they show one. Only code that shows
    one pays for the full check and its explanation."""
    try:
        tally = _shim.Tally()
    except RuntimeError:
        return None

    def record(left: int) -> bool:
        # The table is walked at the first two records and the last two;
        # positional: a keyword's name tuple would be one more reference
        # on the stack.
        tally.record(left >= repeat - 1 or left <= 1)
        # A leak grows in every measured run, so a first one that shows no
        # sign proves there is none: the other runs are not needed.
        return left == repeat or bool(tally.signs())

    with _shim.precise_tracebacks(True), _only_new_objects_collected():
        hits = _runs(call, warmup, repeat, record)
        # A recycled object skipped the allocator the counters watch.
        if tally.signs() or _recycled_since(hits):
            return None
        return len(tally) - 1


def _runs(
    call: Callable[[], object],
    warmup: int,
    repeat: int,
    record: Callable[[int], bool],
) -> dict[str, int]:
    """The warm-ups, then a collection and `record(repeat)`; then each
    measured run, a collection and `record(runs left)`, until none is left
    or `record` says to stop (returns False). Returns the freelists' hits
    counted before the first record."""
    for _ in range(warmup):
        call()
    _collect()
    hits = _hits()
    record(repeat)
    # A counter, not a `for` loop: a loop's iterator would be alive from
    # run 1 on, an object and a reference the checker itself left behind.
    runs_left = repeat
    while runs_left:
        call()
        _collect()
        runs_left -= 1
        if not record(runs_left):
            break
    return hits


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
        self.report = build_report(
            evidence,
            target=self._name,
            warmup=0,
            ignore=self._ignore,
            recycled=recycled,
        )
        return None

    __enter__ = __exit__ = _edge


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
    # The type method cache holds the attribute names of recent lookups from
    # C, keyed by pointer, so it grows with fresh name strings; regrtest -R
    # clears it before each measurement too.
    sys._clear_internal_caches()
    # struct keeps a compiled Struct per format it has seen, up to 100; regrtest
    # -R clears that cache too.
    struct = sys.modules.get("_struct")
    if struct is not None:
        struct._clearcache()
    # Finalizers can free more objects on the next pass; stop when one frees none.
    for _ in range(3):
        if not gc.collect():
            break


def _name_of(func: Callable[..., object]) -> str:
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}" if module else name

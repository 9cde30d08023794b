"""Where native memory and descriptors that the runs kept were allocated.

A check sees native memory grow through one counter (`_shim.native_bytes`).
Once that growth is confirmed, the runs are made again under memray's
`Tracker` with native traces, and its `FileReader` says which allocations
outlived them, each with the C frames that made it and the Python line
that called into C. memray is optional: without it a native leak is still
found, with its bytes per run but no stack.

A descriptor leak is explained by one more run under a profile hook: after
each call into C returns, the lowest free descriptor number says whether
that call opened one, since an open takes the lowest number free.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
from collections.abc import Callable, Iterable
from typing import Any

from .report import SHOWN_FRAMES, NativeStack, Opening, _below_harness, _format
from .saferepr import safe_repr

# Stacks shown per native leak, most bytes first.
SHOWN_STACKS = 5
# C frames shown per stack, from the call out of Python down.
SHOWN_NATIVE_FRAMES = 8
# Frames of memray's traces read.
STACK_DEPTH = 64

# Python's own allocators, below which a block is Python's memory.
_PYTHON_ALLOCATORS = ("_PyMem_RawMalloc", "_PyMem_RawCalloc", "_PyMem_RawRealloc")
# The interpreter's call machinery between Python code and the C function
# it called: not the code being checked.
_CALL_MACHINERY = (
    "cfunction_",
    "method_vectorcall",
    "_PyObject_Vectorcall",
    "PyObject_Vectorcall",
    "_PyObject_Call",
    "PyObject_Call",
    "_PyObject_MakeTpCall",
    "_PyEval",
    "PyEval",
    "_PyFunction_Vectorcall",
    "wrapperdescr_call",
    "wrapper_call",
    "slot_tp_",
    "type_call",
    "vectorcall_",
)


def explain_memory(call: Callable[[], object], runs: int) -> tuple[list[NativeStack], str | None]:
    """Make `runs` more runs under memray's native tracking: the stacks
    whose allocations outlived them, at least one a run, and why none is
    shown when none is."""
    try:
        # Optional, and installed for the tests on the leak-checking
        # flavours only: elsewhere mypy finds no module.
        import memray  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return [], "install memray (pip install memray) to see where in C it was allocated"
    with tempfile.TemporaryDirectory(prefix="check-leaks-") as directory:
        path = os.path.join(directory, "native.bin")
        try:
            with memray.Tracker(path, native_traces=True):
                for _ in range(runs):
                    call()
        except Exception as error:  # another tracker is active, or a run failed
            return [], f"memray could not follow the runs: {type(error).__name__}: {error}"
        # Closed here, not when a later collection finds it: what the
        # reader frees is native memory, and would count in later runs.
        with memray.FileReader(path) as reader:
            records = reader.get_leaked_allocation_records(merge_threads=True)
            stacks = _stacks(records, runs)
            del records
    if not stacks:
        return [], (
            "memray saw none outlive every run: it does not see memory from mmap, "
            "nor a malloc called through a pointer from dlsym (as ctypes calls it)"
        )
    return stacks, None


def _stacks(records: Iterable[Any], runs: int) -> list[NativeStack]:
    """The leaked allocations of C code grouped by stack, each kept if it
    was made at least once a run."""
    grouped: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        hybrid = record.hybrid_stack_trace(max_stacks=STACK_DEPTH)
        python = record.stack_trace(max_stacks=STACK_DEPTH)
        split = _native_part(hybrid, python)
        if split is None:
            continue
        raw = tuple((filename, line) for _, filename, line in python)
        frames = list(reversed(_below_harness(raw)))
        key = (tuple(frames), tuple(split))
        entry = grouped.setdefault(key, [0, 0])
        entry[0] += record.n_allocations
        entry[1] += record.size
    stacks = [
        NativeStack(
            allocations_per_run=count / runs,
            bytes_per_run=size // runs,
            site="{}:{}".format(*frames[-1]) if frames else None,
            traceback=_format(list(frames[-SHOWN_FRAMES:])),
            native=list(native),
        )
        for (frames, native), (count, size) in grouped.items()
        if count >= runs
    ]
    stacks.sort(key=lambda stack: -stack.bytes_per_run)
    return stacks[:SHOWN_STACKS]


def _native_part(
    hybrid: list[tuple[str, str, int]], python: list[tuple[str, str, int]]
) -> list[str] | None:
    """The C frames of an allocation, innermost first, from the allocator up
    to the call out of Python, in words; None for a block that is Python's
    own memory, the checker's, or made where no Python code called. A C
    function checked itself is called from the checker's frames."""
    if not python:
        return None
    frames = []
    for function, filename, line in hybrid:
        if (function, filename, line) == python[0]:
            break
        if function.startswith(_PYTHON_ALLOCATORS) or "_shim" in function:
            return None
        if function.startswith(_CALL_MACHINERY):
            break
        frames.append(f"{function} at {filename}:{line}" if line else function)
    return _unknown_runs_joined(frames)[:SHOWN_NATIVE_FRAMES] or None


def _unknown_runs_joined(frames: list[str]) -> list[str]:
    """Consecutive frames without symbols (a stripped library's) as one."""
    joined: list[str] = []
    for frame in frames:
        if frame == _UNKNOWN and joined and joined[-1].startswith(_UNKNOWN):
            count = int(joined[-1].partition(" × ")[2] or 1) + 1
            joined[-1] = f"{_UNKNOWN} × {count}"
        else:
            joined.append(frame)
    return joined


# How memray names a frame it has no symbol for.
_UNKNOWN = "<unknown>"


def explain_descriptors(call: Callable[[], object], target: str) -> list[Opening]:
    """Make one more run, watching every call into C and every return from
    Python code: the calls that opened the descriptors the run left open.
    What opened one and returned unseen, as a C function checked itself
    does, is named `target`."""
    before = _open()
    watch = _Watch(before)
    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        call()
    except Exception:
        pass  # what it opened before failing is still worth naming
    finally:
        sys.setprofile(previous)
    watch.seen(target, None)
    left = _open() - before
    found: dict[tuple[str, str | None], list[Any]] = {}
    for fd in sorted(left):
        call_name, frames = watch.opened.get(fd, ("a call the profile hook did not see", []))
        site = "{}:{}".format(*frames[-1]) if frames else None
        entry = found.setdefault((call_name, site), [[], frames])
        entry[0].append(_path(fd))
    return [
        Opening(
            count=len(paths),
            paths=paths,
            call=call_name,
            site=site,
            traceback=_format(frames[-SHOWN_FRAMES:]),
        )
        for (call_name, site), (paths, frames) in found.items()
    ]


class _Watch:
    """A profile hook that notes, for each descriptor opened while it is
    on, the innermost call then running and the checked code's frames that
    made it. Between two events only the innermost call runs, so the first
    event after a descriptor appears names the call that opened it."""

    def __init__(self, open_now: set[int]) -> None:
        from . import _shim

        self._first_free = _shim.first_free_descriptor
        self._known = set(open_now)
        self._lowest = self._first_free()
        # The calls running, innermost last: (name, the frame that called).
        self._calls: list[tuple[str, types.FrameType | None]] = []
        self.opened: dict[int, tuple[str, list[tuple[str, int]]]] = {}

    def __call__(self, frame: types.FrameType, event: str, arg: object) -> None:
        if self._calls:
            self.seen(*self._calls[-1])
        if event == "call":
            self._calls.append((frame.f_code.co_qualname, frame.f_back))
        elif event == "c_call":
            self._calls.append((_name(arg), frame))
        elif event in ("return", "c_return", "c_exception") and self._calls:
            self._calls.pop()

    def seen(self, what: str, caller: types.FrameType | None) -> None:
        """Note the descriptors opened since the last look, by `what`,
        called from `caller`."""
        lowest = self._first_free()
        if lowest > self._lowest:
            for fd in range(self._lowest, lowest):
                if fd not in self._known:
                    self._known.add(fd)
                    self.opened[fd] = (what, _frames(caller))
        elif lowest < self._lowest:
            self._known.discard(lowest)
        self._lowest = lowest


def _frames(frame: types.FrameType | None) -> list[tuple[str, int]]:
    """The checked code's frames at `frame`, oldest first: none if `frame`
    is the checker's."""
    raw = []
    while frame is not None:
        raw.append((frame.f_code.co_filename, frame.f_lineno or 0))
        frame = frame.f_back
    return list(reversed(_below_harness(tuple(raw))))


def _name(function: object) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None)
    if not isinstance(name, str):
        return safe_repr(function, 60)
    return f"{module}.{name}" if isinstance(module, str) else name


def _open() -> set[int]:
    """The open descriptors, less the one that listed them: closed by now,
    its link no longer reads."""
    try:
        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return set()
    return {fd for fd in listed if _link(fd) is not None}


def _link(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _path(fd: int) -> str:
    return _link(fd) or f"descriptor {fd}"

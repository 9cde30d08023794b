"""Hunt memory leaks in Python with exact allocation info.

check_leaks runs on a patched CPython 3.13 debug build whose object
freelists can be switched off, so that every object is allocated through the
memory allocator and tracemalloc attributes it exactly.

- `check(func, ...)` and `watch()` find what code leaves behind, with each
  object's allocation site and who holds it. `Monitor` (and the middleware
  `ASGIMonitor` and `WSGIMonitor`) does the same for a long-running program,
  checkpoint after checkpoint. `census()` lists the live
  objects whose references nothing accounts for. They switch precise mode and
  tracemalloc on for their window and restore the previous state after.
- `precise_tracebacks()`, `freelists()` and `set_freelist()` control the
  freelists directly; they never start tracemalloc.
"""

import sys
from importlib.metadata import version

try:
    from ._shim import (
        KINDS,
        FreeList,
        PreciseTracebacks,
        freelists,
        precise_tracebacks,
        set_freelist,
    )
except ImportError as _import_error:
    # An unpatched CPython lacks the PyFreeList_* symbols; any other
    # interpreter finds no extension built for it. (The private name keeps
    # the except target out of stubtest's view of the public module.)
    raise ImportError(
        f"this is not the check_leaks interpreter: {sys.executable} "
        f"(Python {sys.version}). check_leaks needs its "
        "patched CPython 3.13 debug build: build it with `cargo xtask "
        "build-python`, then run Python through `cargo xtask python ...`."
    ) from _import_error

from .census import Census, CensusGroup, census
from .checker import check, watch
from .middleware import ASGIMonitor, WSGIMonitor
from .monitor import Monitor
from .report import (
    BlockLeak,
    DescriptorLeak,
    LeakError,
    LeakGroup,
    LeakReport,
    NativeLeak,
    Node,
    ReferenceLeak,
    Series,
)
from .timeline import MonitorGroup, MonitorReport

__version__ = version("check-leaks")

__all__ = [
    "KINDS",
    "ASGIMonitor",
    "BlockLeak",
    "Census",
    "CensusGroup",
    "DescriptorLeak",
    "FreeList",
    "LeakError",
    "LeakGroup",
    "LeakReport",
    "Monitor",
    "MonitorGroup",
    "MonitorReport",
    "NativeLeak",
    "Node",
    "PreciseTracebacks",
    "ReferenceLeak",
    "Series",
    "WSGIMonitor",
    "census",
    "check",
    "freelists",
    "precise_tracebacks",
    "set_freelist",
    "watch",
]

"""Leak reports: what each run left behind, grouped by type and allocation
site, with who holds it. A report keeps only text and ids, never the objects,
so it cannot keep a leak alive. The `reporters` package renders it."""

from __future__ import annotations

import _tracemalloc
import dataclasses
import functools
import importlib.util
import linecache
import os
import runpy
import sys
from collections.abc import Collection, Sequence
from typing import Any, cast

from . import _shim, holders, reporters
from .saferepr import safe_repr, type_name, type_name_of_class

# Traceback frames shown per group.
SHOWN_FRAMES = 6


def _package_dir(name: str) -> tuple[str, ...]:
    """The directory of package `name`, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return ()
    return (os.path.dirname(spec.origin) + os.sep,)


# Frames from these run the checked code; they say nothing about it: the
# checker, runpy for the CLI, and pytest with its hook caller for the plugin,
# and unittest's TestCase (only its case.py: unittest.mock is the test's own).
HARNESS = (
    os.path.dirname(__file__) + os.sep,
    runpy.__file__,
    *_package_dir("_pytest"),
    *_package_dir("pluggy"),
    *(directory + "case.py" for directory in _package_dir("unittest")),
)


class LeakError(AssertionError):
    """Raised by `LeakReport.assert_no_leaks()`; its message is the report."""


@dataclasses.dataclass(frozen=True)
class Node:
    """One object on a chain of holders."""

    id: int
    type: str
    repr: str


@dataclasses.dataclass(frozen=True)
class Series:
    """A candidate's count after each batch of runs of its confirmation:
    `counts[i]` after `runs[i]` runs. What a report plots as its growth."""

    runs: list[int]
    counts: list[int]


@dataclasses.dataclass(frozen=True)
class LeakGroup:
    """Objects of one type allocated at one line that survived the runs."""

    type: str
    count: int
    size: int
    per_run: list[int]
    bytes_per_run: list[int]
    leak: bool  # grew in every run and went on growing; otherwise not a leak
    site: str | None  # "file:line" of the allocation, None if untraced
    traceback: list[str]
    example: str
    root: str | None  # what the chain starts from; None: nothing visible, held from C
    chain: list[Node]  # from the root (or the topmost holder) down to the example
    # Each link of `chain` in words, after a line on where the interpreter
    # keeps the root, if it holds it from C.
    held_by: list[str]
    unaccounted_references: int  # references no traversal explains: a C refcount leak
    has_traverse: bool  # its type takes part in the gc, with a tp_traverse
    # What the runs past the measured ones showed: for a leak, how many
    # support it; for a group that grew in every measured run but is not a
    # leak, why (a bounded cache it fills, or growth that stopped). None
    # for a one-time group.
    growth: str | None = None
    # The live instances of its type, counted through the confirmation.
    series: Series | None = None

    @property
    def held_from_c(self) -> bool:
        return self.root is None


@dataclasses.dataclass(frozen=True)
class ReferenceLeak:
    """An object that existed before the runs and gained references in every
    run that no new object explains: a missing Py_DECREF, or a container
    that keeps adding it."""

    type: str
    example: str
    per_run: list[int]  # how many references it gained in each run
    explained: int  # of those, references from objects the runs left alive
    root: str | None
    chain: list[Node]
    held_by: list[str]
    unaccounted_references: int  # now, in all: references no traversal explains
    growth: str | None = None  # how many runs support it
    series: Series | None = None  # its reference count through the confirmation


@dataclasses.dataclass(frozen=True)
class UnreleasedTypeRefs:
    """References to a heap type that its instances' tp_dealloc kept when
    they were freed: a missing `Py_DECREF(Py_TYPE(self))` (bpo-35810), as in
    mypyc's code and many hand-written extensions. The instances are freed;
    the references keep only the type alive, which its module does anyway.
    Shown, and not counted as a leak."""

    type: str  # the type's qualified name
    per_run: list[int]


@dataclasses.dataclass(frozen=True)
class BlockLeak:
    """Raw memory blocks (not objects) allocated at one traceback, more in
    every run, none of them part of an object the runs left alive."""

    per_run: list[int]  # blocks added per run
    bytes_per_run: list[int]
    site: str | None
    traceback: list[str]
    growth: str | None = None  # how many runs support it
    series: Series | None = None  # its live blocks through the confirmation


@dataclasses.dataclass(frozen=True)
class DescriptorLeak:
    """File descriptors opened in every run and never closed."""

    per_run: list[int]
    paths: list[str]  # what the ones still open point at
    growth: str | None = None  # how many runs support it
    series: Series | None = None  # open descriptors through the confirmation
    # Where one more run opened those it left open (see `native`).
    opened: list[Opening] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Opening:
    """The call that opened descriptors a run left open."""

    count: int  # descriptors it left open in the run watched
    paths: list[str]
    call: str  # the function called from Python, such as "leakext.open_fd"
    site: str | None  # "file:line" of the checked code that called it
    traceback: list[str]


@dataclasses.dataclass(frozen=True)
class NativeStack:
    """Native allocations made at one stack that outlived the runs."""

    allocations_per_run: float
    bytes_per_run: int
    site: str | None  # "file:line" of the checked code that called into C
    traceback: list[str]  # the Python frames, from the checked code down
    native: list[str]  # the C frames: the one that allocated first, up to the call out of Python


@dataclasses.dataclass(frozen=True)
class NativeLeak:
    """Memory C code took from malloc in every run, outside Python's
    allocators, and never freed: seen as malloc's heap in use (see
    `_shim.native_bytes`)."""

    per_run: list[int]  # bytes
    growth: str | None = None  # how many runs support it
    series: Series | None = None  # native bytes through the confirmation
    # Where the allocations were made, from memray's native traces.
    stacks: list[NativeStack] = dataclasses.field(default_factory=list)
    # Why no stack is shown, when none is.
    unexplained: str | None = None


@dataclasses.dataclass(frozen=True)
class LeakReport:
    """What the checked code left behind. False when it left nothing."""

    target: str
    warmup: int
    runs: int
    groups: list[LeakGroup]
    reference_leaks: list[ReferenceLeak]
    block_leaks: list[BlockLeak]
    descriptor_leak: DescriptorLeak | None
    object_deltas: list[int]
    # The sum of the reference counts of every mortal object, read from the
    # objects: code built for a release ABI changes counts without telling
    # sys.gettotalrefcount().
    refcount_deltas: list[int]
    block_deltas: list[int]
    descriptor_deltas: list[int]
    # References rose in every run, yet no run left a new object and no
    # single object gained them all: leaked on objects that already existed.
    reference_leak: bool
    # Objects recycled per kind during the runs: their tracebacks may be stale.
    recycled: dict[str, int]
    # Measured runs not made: a leak grows in every run, so once one left
    # nothing behind, no more could show a leak.
    runs_not_needed: int = 0
    # Left out of every reference count above.
    unreleased_type_refs: list[UnreleasedTypeRefs] = dataclasses.field(default_factory=list)
    # Runs made past the measured ones to tell growth that goes on from
    # growth that stops.
    confirm_runs: int = 0
    # What grew in every measured run and then stopped, in words: not leaks.
    # (Groups of objects that did are among `groups`, not leaks.)
    bounded: list[str] = dataclasses.field(default_factory=list)
    # Why the check made fewer runs than it meant to: the code slowed down
    # run after run, or the time budget ran out.
    stopped: str | None = None
    # Stopped before the measured runs were made: no verdict could be
    # reached, which fails as a leak does.
    unfinished: bool = False
    # How much each run changed the bytes malloc holds for C code; empty
    # where they cannot be read.
    native_deltas: list[int] = dataclasses.field(default_factory=list)
    native_leak: NativeLeak | None = None

    @classmethod
    def level(
        cls, *, target: str, warmup: int, runs: int, of: int, native_deltas: list[int]
    ) -> LeakReport:
        """The report of `runs` (of `of` asked for) that showed no sign of
        a leak: nothing left behind, and native memory that did not grow in
        every run."""
        return cls.empty(
            target=target,
            warmup=warmup,
            runs=runs,
            runs_not_needed=of - runs,
            native_deltas=native_deltas,
        )

    @classmethod
    def halted(cls, *, target: str, warmup: int, why: str, signs: list[str]) -> LeakReport:
        """The report of a check stopped before its measured runs were
        made, with what the counters had seen grow."""
        why = "; ".join([why, *(f"seen: {sign}" for sign in signs)])
        return cls.empty(target=target, warmup=warmup, runs=0, stopped=why, unfinished=True)

    @classmethod
    def empty(cls, *, target: str, warmup: int, runs: int, **fields: Any) -> LeakReport:
        return cls(
            target=target,
            warmup=warmup,
            runs=runs,
            groups=[],
            reference_leaks=[],
            block_leaks=[],
            descriptor_leak=None,
            object_deltas=[0] * runs,
            refcount_deltas=[0] * runs,
            block_deltas=[0] * runs,
            descriptor_deltas=[0] * runs,
            reference_leak=False,
            recycled={},
            **fields,
        )

    @property
    def leaks(self) -> list[LeakGroup]:
        return [group for group in self.groups if group.leak]

    def __bool__(self) -> bool:
        return bool(
            self.leaks
            or self.reference_leaks
            or self.block_leaks
            or self.descriptor_leak
            or self.native_leak
            or self.reference_leak
            or self.unfinished
        )

    @property
    def leaked_bytes(self) -> int:
        """Bytes of the leaked objects, raw blocks and native memory, all
        runs together."""
        native = sum(self.native_leak.per_run) if self.native_leak else 0
        return (
            sum(group.size for group in self.leaks)
            + sum(sum(block.bytes_per_run) for block in self.block_leaks)
            + native
        )

    def summary(self) -> str:
        """What leaked, in one line."""
        return reporters.text.summary(self)

    def assert_no_leaks(self) -> None:
        if self:
            raise LeakError(str(self))

    def __str__(self) -> str:
        return reporters.text.render(self)

    def text(self, *, one_time: bool = True) -> str:
        """The report as text; with `one_time=False`, the one-time groups
        are summed up in one line instead of shown."""
        return reporters.text.render(self, one_time=one_time)

    def to_json(self) -> str:
        return reporters.json.render(self)

    def to_dot(self) -> str:
        return reporters.dot.render(self)

    def to_html(self) -> str:
        return reporters.html.render(self)


# tracemalloc's raw traceback: (filename, lineno) pairs, most recent first.
RawTraceback = Sequence[tuple[str, int]]


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a check window found, gathered while tracemalloc still traces.

    The report is built from it after tracing stops: while tracing, every
    allocation the report makes would cost a traceback of its own, ten times
    the work on a big heap."""

    heap: _shim.Heap
    survivors: list[list[int]]  # per run, ids of the objects it left alive
    unaccounted: dict[int, int]
    tracebacks: dict[int, RawTraceback | None]
    # (id, per-run rise, references from survivors) of old objects whose
    # count rose in every run.
    growing: list[tuple[int, list[int], int]]
    # (id, per-run rise) of heap types whose dead instances kept references.
    unreleased_type_refs: list[tuple[int, list[int]]]
    # (key, traceback, per-run blocks, per-run bytes) of raw blocks that grew.
    growing_blocks: list[tuple[int, RawTraceback, list[int], list[int]]]
    # Live traced blocks that live objects own (a dict's key table, a list's
    # items...), by traceback key; counted only when some block grew.
    owned_blocks: dict[int, int]
    new_descriptors: list[list[tuple[int, str]]]
    object_deltas: list[int]
    refcount_deltas: list[int]
    block_deltas: list[int]
    descriptor_deltas: list[int]

    @functools.cached_property
    def block_leaks(self) -> list[tuple[int, BlockLeak]]:
        """(traceback key, leak) of the raw blocks a report calls leaks: the
        check keeps tracemalloc on to follow them only if there are any."""
        return _block_leaks(self)


@dataclasses.dataclass(frozen=True)
class Candidates:
    """What a report's candidates are, for a confirmation to count, in the
    order the report lists them."""

    types: list[type]  # of each leak group, counted by live instances
    objects: list[int]  # ids of the objects that gained references
    block_keys: list[int]
    descriptors: bool
    references: bool  # references in all, the report's `reference_leak`
    native: bool

    def __bool__(self) -> bool:
        return bool(
            self.types
            or self.objects
            or self.block_keys
            or self.descriptors
            or self.references
            or self.native
        )


def gather(snapshots: _shim.Snapshots) -> Evidence:
    """Everything from a check window that needs tracemalloc still tracing."""
    # The survivors first: they are told by serial, and everything made from
    # here on is newer than the last record.
    survivors = snapshots.survivors()
    heap = _shim.Heap()
    # The heap keeps everything it lists alive; a survivor missing from it
    # died after the last record.
    survivors = [[i for i in ids if i in heap] for ids in survivors]
    new = {i for ids in survivors for i in ids}
    growing = [
        (i, rises, sum(1 for r in heap.referrer_ids(i) if r in new))
        for i, rises in snapshots.growing_references()
        if i in heap
    ]
    # Count references while only ids are held, so ours are not among them.
    unaccounted = {i: heap.unaccounted_references(i) for i in [*new, *(i for i, _, _ in growing)]}
    # The raw form costs a third of get_object_traceback()'s wrapper objects.
    tracebacks = {i: _tracemalloc._get_object_traceback(heap.object(i)) for i in new}
    growing_blocks = _growing_blocks(snapshots)
    return Evidence(
        heap,
        survivors,
        unaccounted,
        tracebacks,
        growing,
        [(i, rises) for i, rises in snapshots.unreleased_type_refs() if i in heap],
        growing_blocks,
        snapshots.owned_traces() if growing_blocks else {},
        snapshots.new_descriptors(),
        snapshots.object_deltas(),
        snapshots.refcount_deltas(),
        snapshots.block_deltas(),
        snapshots.descriptor_deltas(),
    )


def _growing_blocks(
    snapshots: _shim.Snapshots,
) -> list[tuple[int, RawTraceback, list[int], list[int]]]:
    """The tracebacks of the traced blocks whose count rose in every run,
    up to the harness."""
    grown = {key: (blocks, size) for key, blocks, size in snapshots.growing_traces()}
    return [
        (key, _below_harness(traceback), *grown[key])
        for key, traceback in snapshots.tracebacks(list(grown)).items()
    ]


def build_report(
    evidence: Evidence,
    *,
    target: str,
    warmup: int,
    ignore: Collection[type | str] = (),
    recycled: dict[str, int],
    native: list[int],
    native_slack: int = _shim.NATIVE_SLACK,
) -> tuple[LeakReport, Candidates]:
    """Group what the runs left alive by type and allocation line, and say
    who holds each group; and what grew in every run, for a confirmation to
    follow. A group that fills a bounded cache needs none. `native` is how
    much each run changed the native bytes, read while nothing traced: a
    traced run's count holds tracemalloc's own tables. A run must add more
    than `native_slack` of them for a native leak."""
    ignored = {t if isinstance(t, str) else type_name_of_class(t) for t in ignore}
    heap, survivors = evidence.heap, evidence.survivors
    roots = holders.roots(heap)
    members: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for run, ids in enumerate(survivors):
        for i in ids:
            traceback = evidence.tracebacks[i]
            key = (type(heap.object(i)), traceback[0] if traceback else None)
            members.setdefault(key, []).append((run, i))
    new = {i for ids in survivors for i in ids}
    grouped = [
        (_group(evidence, roots, new, found), cls)
        for (cls, _), found in members.items()
        if type_name_of_class(cls) not in ignored
    ]
    grouped.sort(
        key=lambda entry: (not entry[0].leak, -entry[0].size, -entry[0].count, entry[0].type)
    )
    groups = [group for group, _ in grouped]
    runs = len(survivors)
    growing = [
        (i, rises, explained)
        for i, rises, explained in evidence.growing
        if sum(rises) - explained >= runs and type_name(heap.object(i)) not in ignored
    ]
    reference_leaks = [
        _reference_leak(evidence, roots, i, rises, explained) for i, rises, explained in growing
    ]
    descriptors = evidence.descriptor_deltas
    block_leaks = evidence.block_leaks
    report = LeakReport(
        target=target,
        warmup=warmup,
        runs=runs,
        groups=groups,
        reference_leaks=reference_leaks,
        block_leaks=[leak for _, leak in block_leaks],
        descriptor_leak=DescriptorLeak(
            descriptors,
            [path for fds in evidence.new_descriptors for _, path in fds],
        )
        if descriptors and all(d > 0 for d in descriptors)
        else None,
        object_deltas=evidence.object_deltas,
        refcount_deltas=evidence.refcount_deltas,
        block_deltas=evidence.block_deltas,
        descriptor_deltas=descriptors,
        native_deltas=native,
        native_leak=NativeLeak(native)
        if native and all(d > native_slack for d in native)
        else None,
        reference_leak=all(delta > 0 for delta in evidence.refcount_deltas)
        and not any(survivors)
        and not reference_leaks,
        recycled=recycled,
        unreleased_type_refs=[
            # Patch 0019 counts them for heap types only.
            UnreleasedTypeRefs(type_name_of_class(cast(type, heap.object(i))), rises)
            for i, rises in evidence.unreleased_type_refs
        ],
    )
    return report, Candidates(
        types=[cls for group, cls in grouped if group.leak],
        objects=[i for i, _, _ in growing],
        block_keys=[key for key, _ in block_leaks],
        descriptors=report.descriptor_leak is not None,
        references=report.reference_leak,
        native=report.native_leak is not None,
    )


def _reference_leak(
    evidence: Evidence,
    roots: holders.Roots,
    id_: int,
    rises: list[int],
    explained: int,
) -> ReferenceLeak:
    heap = evidence.heap
    obj = heap.object(id_)
    root, chain, held_by, _ = _holders(heap, roots, [id_])
    return ReferenceLeak(
        type=type_name(obj),
        example=safe_repr(obj),
        per_run=rises,
        explained=explained,
        root=root,
        chain=chain,
        held_by=held_by,
        unaccounted_references=evidence.unaccounted[id_],
    )


def _block_leaks(evidence: Evidence) -> list[tuple[int, BlockLeak]]:
    """Blocks that grew in every run, less those that are part of a live
    object (a dict's key table, resized at a later line than the one that
    made the dict), and those that may be part of an object the runs left
    alive: one allocated by the same code, at another line of the same frame
    or at the same line."""
    owners = {
        _frame_of(_below_harness(traceback))
        for traceback in evidence.tracebacks.values()
        if traceback
    }
    leaks = []
    for key, traceback, blocks, sizes in evidence.growing_blocks:
        if not traceback or _frame_of(traceback) in owners:
            continue
        if evidence.owned_blocks.get(key, 0) >= sum(blocks):
            continue
        frames = _user_frames(traceback)
        leaks.append(
            (
                key,
                BlockLeak(
                    per_run=blocks,
                    bytes_per_run=sizes,
                    site="{}:{}".format(*frames[-1]) if frames else None,
                    traceback=_format(frames[-SHOWN_FRAMES:]),
                ),
            )
        )
    return leaks


def _frame_of(traceback: RawTraceback) -> tuple[Any, ...]:
    """The innermost frame's file and every frame that called it: the same
    for every allocation one function call makes."""
    return (traceback[0][0], *traceback[1:]) if traceback else ()


def _below_harness(traceback: RawTraceback) -> RawTraceback:
    """The frames of `traceback` (most recent first) below the harness's
    first: the same for a warm-up and a measured run."""
    frames = []
    for frame in traceback:
        if frame[0].startswith(HARNESS):
            break
        frames.append(frame)
    return tuple(frames)


def _holders(
    heap: _shim.Heap, roots: holders.Roots, ids: list[int]
) -> tuple[str | None, list[Node], list[str], list[object]]:
    """Who holds the one of `ids` closest to a root: the root's description
    (None if no root reaches them), the chain, each link in words, and every
    object on the way. The chain leaves out the plumbing that one link's
    words pass through: a closure's cell, an instance's __dict__."""
    chain = heap.shortest_path(ids, roots.keys())
    root = roots[id(chain[0])] if chain else None
    if chain is None:
        chain = heap.unreachable_path(ids)
    links = holders.describe_chain(chain, roots)
    shown = [chain[0], *(chain[i] for i, _ in links if i)]
    nodes = [Node(id(obj), type_name(obj), safe_repr(obj, 40)) for obj in shown]
    return root, nodes, [words for _, words in links], chain


def _group(
    evidence: Evidence, roots: holders.Roots, new: set[int], found: list[tuple[int, int]]
) -> LeakGroup:
    heap = evidence.heap
    per_run = [0] * len(evidence.survivors)
    bytes_per_run = [0] * len(evidence.survivors)
    for run, i in found:
        per_run[run] += 1
        bytes_per_run[run] += _sizeof(heap.object(i))
    ids = [i for _, i in found]
    root, chain, held_by, objects = _holders(heap, roots, ids)
    # Growth in every run is a leak only if it goes on; in a cache with a
    # bound, it cannot.
    cache = holders.bounded_cache(objects, new) if all(per_run) else None
    # The example is the member closest to a root: the chain ends at it.
    example_id = chain[-1].id if chain[-1].id in ids else ids[0]
    example = heap.object(example_id)
    frames = _user_frames(evidence.tracebacks[example_id])
    return LeakGroup(
        type=type_name(example),
        count=len(found),
        size=sum(bytes_per_run),
        per_run=per_run,
        bytes_per_run=bytes_per_run,
        leak=all(per_run) and cache is None,
        site="{}:{}".format(*frames[-1]) if frames else None,
        traceback=_format(frames[-SHOWN_FRAMES:]),
        example=safe_repr(example),
        root=root,
        chain=chain,
        held_by=held_by,
        unaccounted_references=sum(evidence.unaccounted[i] for _, i in found),
        has_traverse=_has_gc(type(example)),
        growth=f"fills a bounded cache: {cache}" if cache else None,
    )


def _user_frames(traceback: RawTraceback | None) -> list[tuple[str, int]]:
    """The allocation traceback, oldest first, from the checked code down:
    the harness's frames, and whatever called them, are cut off. If nothing
    is left (a checked C function made it), the innermost frame stays."""
    if not traceback:
        return []
    return list(reversed(_below_harness(traceback))) or [traceback[0]]


def _format(frames: list[tuple[str, int]]) -> list[str]:
    lines = []
    for filename, lineno in frames:
        lines.append(f'  File "{filename}", line {lineno}')
        source = linecache.getline(filename, lineno).strip()
        if source:
            lines.append(f"    {source}")
    return lines


def _has_gc(cls: type) -> bool:
    """Whether objects of `cls` take part in the gc, so that a reference to
    one may be missing from some holder's tp_traverse."""
    return bool(cls.__flags__ & _HAVE_GC)


# Py_TPFLAGS_HAVE_GC
_HAVE_GC = 1 << 14


def _sizeof(obj: object) -> int:
    try:
        return sys.getsizeof(obj)
    except Exception:  # a broken __sizeof__ must not break the report
        return 0

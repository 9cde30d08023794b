"""Leak reports: what each run left behind, grouped by type and allocation
site, with who holds it. A report keeps only text and ids, never the objects,
so it cannot keep a leak alive."""

from __future__ import annotations

import _tracemalloc
import dataclasses
import html
import importlib.util
import json
import linecache
import os
import runpy
import sys
from collections.abc import Collection, Sequence
from typing import Any, cast

from . import _shim, holders
from .saferepr import safe_repr, type_name, type_name_of_class

# Traceback frames shown per group.
SHOWN_FRAMES = 6
# Links of a holder chain shown at each end; the middle of a longer one is cut.
SHOWN_LINKS = 5
# Types of leaked objects named in a report's one-line summary.
SHOWN_TYPES = 3
# Paths of leaked file descriptors shown.
SHOWN_PATHS = 10


def _package_dir(name: str) -> tuple[str, ...]:
    """The directory of package `name`, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return ()
    return (os.path.dirname(spec.origin) + os.sep,)


# Frames from these run the checked code; they say nothing about it: the
# checker, runpy for the CLI, and pytest with its hook caller for the plugin.
HARNESS = (
    os.path.dirname(__file__) + os.sep,
    runpy.__file__,
    *_package_dir("_pytest"),
    *_package_dir("pluggy"),
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
class LeakGroup:
    """Objects of one type allocated at one line that survived the runs."""

    type: str
    count: int
    size: int
    per_run: list[int]
    leak: bool  # grew with every run; otherwise a one-time allocation
    site: str | None  # "file:line" of the allocation, None if untraced
    traceback: list[str]
    example: str
    root: str | None  # what the chain starts from; None: nothing visible, held from C
    chain: list[Node]  # from the root (or the topmost holder) down to the example
    held_by: list[str]  # for each link of `chain`, where the next object sits
    unaccounted_references: int  # references no traversal explains: a C refcount leak
    has_traverse: bool  # its type takes part in the gc, with a tp_traverse

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


@dataclasses.dataclass(frozen=True)
class DescriptorLeak:
    """File descriptors opened in every run and never closed."""

    per_run: list[int]
    paths: list[str]  # what the ones still open point at


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

    @classmethod
    def level(cls, *, target: str, warmup: int, runs: int, of: int) -> LeakReport:
        """The report of `runs` (of `of` asked for) that changed no counter:
        nothing left behind."""
        return cls(
            target=target,
            warmup=warmup,
            runs=runs,
            runs_not_needed=of - runs,
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
            or self.reference_leak
        )

    @property
    def leaked_bytes(self) -> int:
        """Bytes of the leaked objects and raw blocks, all runs together."""
        return sum(group.size for group in self.leaks) + sum(
            sum(block.bytes_per_run) for block in self.block_leaks
        )

    def summary(self) -> str:
        """What leaked, in one line."""
        by_type: dict[str, int] = {}
        for group in self.leaks:
            by_type[group.type] = by_type.get(group.type, 0) + group.count
        ranked = sorted(by_type.items(), key=lambda entry: (-entry[1], entry[0]))
        parts = [_count(count, f"{name} object") for name, count in ranked[:SHOWN_TYPES]]
        if len(ranked) > SHOWN_TYPES:
            parts.append(f"{_count(len(ranked) - SHOWN_TYPES, 'more type')}")
        if len(self.reference_leaks) == 1:
            parts.append(f"references to a {self.reference_leaks[0].type}")
        elif self.reference_leaks:
            kinds = sorted({leak.type for leak in self.reference_leaks})
            shown = ", ".join(kinds[:SHOWN_TYPES]) + (", ..." if len(kinds) > SHOWN_TYPES else "")
            parts.append(f"references to {len(self.reference_leaks)} existing objects ({shown})")
        parts += [
            f"{_count(sum(block.per_run), 'raw block')} at {block.site or 'an untraced site'}"
            for block in self.block_leaks
        ]
        if self.descriptor_leak:
            parts.append(_count(sum(self.descriptor_leak.per_run), "descriptor"))
        if self.reference_leak:
            parts.append(f"{sum(self.refcount_deltas)} references on objects that existed")
        if not parts:
            return "no leak"
        return f"{', '.join(parts)} in {self.runs} runs ({self.leaked_bytes} B)"

    def assert_no_leaks(self) -> None:
        if self:
            raise LeakError(str(self))

    def __str__(self) -> str:
        return _text(self)

    def text(self, *, one_time: bool = True) -> str:
        """The report as text; with `one_time=False`, the one-time groups
        are summed up in one line instead of shown."""
        return _text(self, one_time=one_time)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def to_dot(self) -> str:
        return _dot(self)

    def to_html(self) -> str:
        return _html(self)


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
    # (traceback, per-run blocks, per-run bytes) of raw blocks that grew.
    growing_blocks: list[tuple[RawTraceback, list[int], list[int]]]
    new_descriptors: list[list[tuple[int, str]]]
    object_deltas: list[int]
    refcount_deltas: list[int]
    block_deltas: list[int]
    descriptor_deltas: list[int]

    def unowned_blocks(self) -> bool:
        """Whether raw blocks that grew in every run would be reported:
        only those are worth confirming with more runs."""
        return bool(_block_leaks(self))


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
    return Evidence(
        heap,
        survivors,
        unaccounted,
        tracebacks,
        growing,
        [(i, rises) for i, rises in snapshots.unreleased_type_refs() if i in heap],
        _growing_blocks(snapshots),
        snapshots.new_descriptors(),
        snapshots.object_deltas(),
        snapshots.refcount_deltas(),
        snapshots.block_deltas(),
        snapshots.descriptor_deltas(),
    )


def _growing_blocks(
    snapshots: _shim.Snapshots,
) -> list[tuple[RawTraceback, list[int], list[int]]]:
    """The tracebacks of the traced blocks whose count rose in every run,
    up to the harness."""
    grown = {key: (blocks, size) for key, blocks, size in snapshots.growing_traces()}
    return [
        (_below_harness(traceback), *grown[key])
        for key, traceback in snapshots.tracebacks(list(grown)).items()
    ]


def build_report(
    evidence: Evidence,
    *,
    target: str,
    warmup: int,
    ignore: Collection[type | str] = (),
    recycled: dict[str, int],
) -> LeakReport:
    """Group what the runs left alive by type and allocation line, and say
    who holds each group."""
    ignored = {t if isinstance(t, str) else type_name_of_class(t) for t in ignore}
    heap, survivors = evidence.heap, evidence.survivors
    roots = holders.roots(heap)
    members: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for run, ids in enumerate(survivors):
        for i in ids:
            traceback = evidence.tracebacks[i]
            key = (type(heap.object(i)), traceback[0] if traceback else None)
            members.setdefault(key, []).append((run, i))
    groups = [
        _group(evidence, roots, found)
        for (cls, _), found in members.items()
        if type_name_of_class(cls) not in ignored
    ]
    groups.sort(key=lambda g: (not g.leak, -g.size, -g.count, g.type))
    runs = len(survivors)
    reference_leaks = [
        _reference_leak(evidence, roots, i, rises, explained)
        for i, rises, explained in evidence.growing
        if sum(rises) - explained >= runs and type_name(heap.object(i)) not in ignored
    ]
    descriptors = evidence.descriptor_deltas
    return LeakReport(
        target=target,
        warmup=warmup,
        runs=runs,
        groups=groups,
        reference_leaks=reference_leaks,
        block_leaks=_block_leaks(evidence),
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


def _reference_leak(
    evidence: Evidence,
    roots: holders.Roots,
    id_: int,
    rises: list[int],
    explained: int,
) -> ReferenceLeak:
    heap = evidence.heap
    obj = heap.object(id_)
    root, chain, held_by = _holders(heap, roots, [id_])
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


def _block_leaks(evidence: Evidence) -> list[BlockLeak]:
    """Blocks that grew in every run, less those that may be part of an
    object the runs left alive: one allocated by the same code, at another
    line of the same frame or at the same line."""
    owners = {
        _frame_of(_below_harness(traceback))
        for traceback in evidence.tracebacks.values()
        if traceback
    }
    leaks = []
    for traceback, blocks, sizes in evidence.growing_blocks:
        if not traceback or _frame_of(traceback) in owners:
            continue
        frames = _user_frames(traceback)
        leaks.append(
            BlockLeak(
                per_run=blocks,
                bytes_per_run=sizes,
                site="{}:{}".format(*frames[-1]) if frames else None,
                traceback=_format(frames[-SHOWN_FRAMES:]),
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
) -> tuple[str | None, list[Node], list[str]]:
    """Who holds the one of `ids` closest to a root: the root's description
    (None if no root reaches them), the chain and each link in words."""
    chain = heap.shortest_path(ids, roots.keys())
    root = roots[id(chain[0])] if chain else None
    if chain is None:
        chain = heap.unreachable_path(ids)
    nodes = [Node(id(obj), type_name(obj), safe_repr(obj, 40)) for obj in chain]
    return root, nodes, holders.describe_chain(chain, roots)


def _group(evidence: Evidence, roots: holders.Roots, found: list[tuple[int, int]]) -> LeakGroup:
    heap = evidence.heap
    per_run = [0] * len(evidence.survivors)
    size = 0
    for run, i in found:
        per_run[run] += 1
        size += _sizeof(heap.object(i))
    ids = [i for _, i in found]
    root, chain, held_by = _holders(heap, roots, ids)
    # The example is the member closest to a root: the chain ends at it.
    example_id = chain[-1].id if chain[-1].id in ids else ids[0]
    example = heap.object(example_id)
    frames = _user_frames(evidence.tracebacks[example_id])
    return LeakGroup(
        type=type_name(example),
        count=len(found),
        size=size,
        per_run=per_run,
        leak=all(per_run),
        site="{}:{}".format(*frames[-1]) if frames else None,
        traceback=_format(frames[-SHOWN_FRAMES:]),
        example=safe_repr(example),
        root=root,
        chain=chain,
        held_by=held_by,
        unaccounted_references=sum(evidence.unaccounted[i] for _, i in found),
        has_traverse=_has_gc(type(example)),
    )


def _user_frames(traceback: RawTraceback | None) -> list[tuple[str, int]]:
    """The allocation traceback, oldest first, from the checked code down:
    the harness's frames, and whatever called them, are cut off. If nothing
    is left, the innermost frame stays: a closure cell is made as the checked
    function is entered, before its first line."""
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


def _text(report: LeakReport, one_time: bool = True) -> str:
    count = (
        len(report.leaks)
        + len(report.reference_leaks)
        + len(report.block_leaks)
        + bool(report.descriptor_leak)
        + report.reference_leak
    )
    runs = f"{_count(report.runs, 'run')} after {_count(report.warmup, 'warm-up')}"
    if report.runs_not_needed:
        runs += (
            f"; it left nothing, so {_count(report.runs_not_needed, 'more run')}"
            " could not show a leak"
        )
    lines = [f"check_leaks: {_count(count, 'leak')} in {report.target} ({runs})"]
    for leak in report.reference_leaks:
        lines += ["", *_reference_text(leak)]
    for block in report.block_leaks:
        lines += ["", *_block_text(block)]
    if report.descriptor_leak:
        lines += ["", *_descriptor_text(report.descriptor_leak)]
    for group in report.groups if one_time else report.leaks:
        lines += ["", *_group_text(group, report.runs)]
    once = [group for group in report.groups if not group.leak]
    if once and not one_time:
        lines += [
            "",
            f"and {_count(len(once), 'one-time group')} "
            f"({_count(sum(g.count for g in once), 'object')}, "
            f"{sum(g.size for g in once)} B) that did not grow in every run, not shown",
        ]
    lines += [
        "",
        "per run: "
        + ", ".join(
            f"{label} {' '.join(f'{d:+d}' for d in deltas)}"
            for label, deltas in (
                ("objects", report.object_deltas),
                ("references", report.refcount_deltas),
                ("allocated blocks", report.block_deltas),
                ("descriptors", report.descriptor_deltas),
            )
        ),
    ]
    if report.reference_leak:
        lines.append(
            "references grew in every run with no new object and no single object "
            "to explain them: references leaked on objects that already existed "
            "(a missing Py_DECREF?)"
        )
    if report.unreleased_type_refs:
        kept = sorted(report.unreleased_type_refs, key=lambda t: (-sum(t.per_run), t.type))
        shown = ", ".join(f"{t.type} {sum(t.per_run)}" for t in kept[:SHOWN_TYPES])
        hidden = len(kept) - SHOWN_TYPES
        more = f" and {_count(hidden, 'more type')}" if hidden > 0 else ""
        lines.append(
            f"not leaks: instances of {_count(len(kept), 'heap type')} were freed "
            "without releasing the reference each held to its type (a missing "
            "Py_DECREF(Py_TYPE(self)) in tp_dealloc, bpo-35810), which keeps only "
            f"the type alive: {shown}{more}"
        )
    if report.recycled:
        counts = ", ".join(f"{kind} {n}" for kind, n in report.recycled.items())
        lines.append(
            f"recycled during the runs, so some tracebacks may be stale: {counts} "
            "(was a kind switched back on?)"
        )
    return "\n".join(lines)


def _group_text(group: LeakGroup, runs: int) -> list[str]:
    kind = "LEAK" if group.leak else "one-time"
    pattern = (
        "one per run"
        if group.per_run == [1] * runs
        else "per run: " + " ".join(map(str, group.per_run))
    )
    lines = [f"{kind}: {_count(group.count, group.type + ' object')}, {group.size} B ({pattern})"]
    lines += _traceback_text(group.site, group.traceback)
    lines.append(f"  e.g. {group.example}")
    lines += _holder_text(group.root, group.chain, group.held_by)
    if group.unaccounted_references:
        lines.append(
            f"  {_count(group.unaccounted_references, 'reference')} nothing accounts for: "
            "probable refcount leak in C (a missing Py_DECREF)"
            + (
                ", or a reference no traversal reports (a missing Py_VISIT)"
                if group.has_traverse
                else ""
            )
        )
    return lines


def _reference_text(leak: ReferenceLeak) -> list[str]:
    rises = " ".join(f"+{n}" for n in leak.per_run)
    lines = [
        f"LEAK: references to an existing {leak.type} object ({rises} per run)",
        f"  the object: {leak.example}",
    ]
    lines += _holder_text(leak.root, leak.chain, leak.held_by)
    if leak.explained:
        lines.append(
            f"  {_count(leak.explained, 'reference')} of them from objects the runs left alive"
        )
    if leak.unaccounted_references:
        lines.append(
            f"  {_count(leak.unaccounted_references, 'reference')} to it nothing accounts for: "
            "a missing Py_DECREF in C (or a reference no tp_traverse reports)"
        )
    else:
        lines.append("  every reference to it is visible: a container keeps adding it")
    return lines


def _block_text(leak: BlockLeak) -> list[str]:
    blocks = " ".join(f"+{n}" for n in leak.per_run)
    size = " ".join(f"+{n}" for n in leak.bytes_per_run)
    lines = [f"LEAK: raw memory, {blocks} blocks ({size} B) per run, in no object"]
    return lines + _traceback_text(leak.site, leak.traceback)


def _descriptor_text(leak: DescriptorLeak) -> list[str]:
    opened = " ".join(f"+{n}" for n in leak.per_run)
    lines = [f"LEAK: file descriptors, {opened} per run, never closed"]
    return (
        lines
        + [f"  open: {path}" for path in leak.paths[:SHOWN_PATHS]]
        + ([f"  … {len(leak.paths) - SHOWN_PATHS} more"] if len(leak.paths) > SHOWN_PATHS else [])
    )


def _traceback_text(site: str | None, traceback: list[str]) -> list[str]:
    if not traceback:
        return ["  allocated before tracing started"]
    return [f"  allocated at {site}", *("    " + line for line in traceback)]


def _holder_text(root: str | None, chain: list[Node], held_by: list[str]) -> list[str]:
    lines = []
    if root is None:
        top = chain[0]
        what = "it" if len(chain) == 1 else f"the {top.type} {top.repr} holding it"
        lines.append(f"  held by nothing visible: {what} is held from C")
    links = [("  held by " if i == 0 else "        → ") + text for i, text in enumerate(held_by)]
    if len(links) > 2 * SHOWN_LINKS:
        hidden = len(links) - 2 * SHOWN_LINKS
        links[SHOWN_LINKS:-SHOWN_LINKS] = [f"        … {hidden:,} more links …"]
    return lines + links


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _dot(report: LeakReport) -> str:
    """Graphviz back-reference graphs, as objgraph draws them: each leak's
    chain of holders, leaked objects in red and roots in green."""
    nodes: dict[int, str] = {}
    edges: set[str] = set()
    for group in report.leaks:
        for i, node in enumerate(group.chain):
            colour = (
                "#ff9999"
                if i == len(group.chain) - 1
                else "#99ee99"
                if i == 0 and group.root
                else "white"
            )
            label = f"{_dot_escape(node.type)}\\n{_dot_escape(node.repr)}"
            nodes[node.id] = f'  o{node.id} [label="{label}", fillcolor="{colour}"];'
        for (holder, held), text in zip(
            zip(group.chain, group.chain[1:], strict=False), group.held_by, strict=False
        ):
            edges.add(f'  o{holder.id} -> o{held.id} [label="{_dot_escape(text)}"];')
    body = "\n".join([*nodes.values(), *sorted(edges)])
    return f"digraph leaks {{\n  node [shape=box, style=filled];\n{body}\n}}\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _html(report: LeakReport) -> str:
    """A self-contained page: no scripts, no external files."""
    parts = [
        *(("leak", _reference_text(leak)) for leak in report.reference_leaks),
        *(("leak", _block_text(leak)) for leak in report.block_leaks),
        *([("leak", _descriptor_text(report.descriptor_leak))] if report.descriptor_leak else []),
        *(("leak" if g.leak else "once", _group_text(g, report.runs)) for g in report.groups),
    ]
    sections = "\n".join(
        f"<section class={kind}><pre>{html.escape(chr(10).join(lines))}</pre></section>"
        for kind, lines in parts
    )
    title = html.escape(_text(report).splitlines()[0])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
pre {{ white-space: pre-wrap; }}
section {{ border-left: 6px solid #ccc; padding: 0 1em; margin: 1em 0; }}
section.leak {{ border-color: #d33; }}
</style></head>
<body><h1>{title}</h1>
{sections or "<p>Nothing was left behind.</p>"}
<p>{html.escape(_text(report).splitlines()[-1])}</p>
</body></html>
"""

"""Leak reports: what each run left behind, grouped by type and allocation
site, with who holds it. A report keeps only text and ids, never the objects,
so it cannot keep a leak alive."""

from __future__ import annotations

import _tracemalloc
import dataclasses
import html
import json
import linecache
import os
import runpy
import sys
from collections.abc import Collection, Sequence
from typing import Any

from . import _shim, holders
from .saferepr import safe_repr, type_name, type_name_of_class

# Traceback frames shown per group.
SHOWN_FRAMES = 6

# Frames from these run the checked code; they say nothing about it.
_HARNESS = (os.path.dirname(__file__) + os.sep, runpy.__file__)


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

    @property
    def held_from_c(self) -> bool:
        return self.root is None


@dataclasses.dataclass(frozen=True)
class LeakReport:
    """What the checked code left behind. False when it left nothing."""

    target: str
    warmup: int
    runs: int
    groups: list[LeakGroup]
    object_deltas: list[int]
    refcount_deltas: list[int]
    block_deltas: list[int]
    # The total refcount rose in every run, yet no run left a new object: a
    # reference leaked on an object that already existed.
    reference_leak: bool
    # Objects recycled per kind during the runs: their tracebacks may be stale.
    recycled: dict[str, int]

    @property
    def leaks(self) -> list[LeakGroup]:
        return [group for group in self.groups if group.leak]

    def __bool__(self) -> bool:
        return bool(self.leaks) or self.reference_leak

    def assert_no_leaks(self) -> None:
        if self:
            raise LeakError(str(self))

    def __str__(self) -> str:
        return _text(self)

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
    object_deltas: list[int]
    refcount_deltas: list[int]
    block_deltas: list[int]


def gather(snapshots: _shim.Snapshots) -> Evidence:
    """Everything from a check window that needs tracemalloc still tracing."""
    heap = _shim.Heap(holders.live_frame_edges())
    # The heap keeps everything it lists alive; a survivor missing from it
    # died after the last record.
    survivors = [[i for i in ids if i in heap] for ids in snapshots.survivors()]
    # Count references while only ids are held, so ours are not among them.
    unaccounted = {i: heap.unaccounted_references(i) for ids in survivors for i in ids}
    # The raw form costs a third of get_object_traceback()'s wrapper objects.
    tracebacks = {
        i: _tracemalloc._get_object_traceback(heap.object(i))
        for ids in survivors
        for i in ids
    }
    return Evidence(
        heap,
        survivors,
        unaccounted,
        tracebacks,
        snapshots.object_deltas(),
        snapshots.refcount_deltas(),
        snapshots.block_deltas(),
    )


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
    roots = holders.roots()
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
    return LeakReport(
        target=target,
        warmup=warmup,
        runs=len(survivors),
        groups=groups,
        object_deltas=evidence.object_deltas,
        refcount_deltas=evidence.refcount_deltas,
        block_deltas=evidence.block_deltas,
        reference_leak=all(delta > 0 for delta in evidence.refcount_deltas)
        and not any(survivors),
        recycled=recycled,
    )


def _group(
    evidence: Evidence, roots: dict[int, str], found: list[tuple[int, int]]
) -> LeakGroup:
    heap = evidence.heap
    per_run = [0] * len(evidence.survivors)
    size = 0
    for run, i in found:
        per_run[run] += 1
        size += _sizeof(heap.object(i))
    example_id = found[0][1]
    example = heap.object(example_id)
    frames = _user_frames(evidence.tracebacks[example_id])
    chain = heap.shortest_path(example_id, roots.keys())
    root = roots[id(chain[0])] if chain else None
    if chain is None:
        chain = heap.unreachable_path(example_id)
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
        chain=[Node(id(obj), type_name(obj), safe_repr(obj, 40)) for obj in chain],
        held_by=holders.describe_chain(chain, roots),
        unaccounted_references=sum(evidence.unaccounted[i] for _, i in found),
    )


def _user_frames(traceback: RawTraceback | None) -> list[tuple[str, int]]:
    """The allocation traceback, oldest first, from the checked code down:
    the frames of check_leaks and runpy, and of whatever called them (pytest),
    are cut off. If nothing is left, the innermost frame stays: a closure
    cell is made as the checked function is entered, before its first line."""
    if traceback is None:
        return []
    frames = list(reversed(traceback))
    harness = [
        i for i, (filename, _) in enumerate(frames) if filename.startswith(_HARNESS)
    ]
    cut = harness[-1] + 1 if harness else 0
    return frames[cut:] or frames[-1:]


def _format(frames: list[tuple[str, int]]) -> list[str]:
    lines = []
    for filename, lineno in frames:
        lines.append(f'  File "{filename}", line {lineno}')
        source = linecache.getline(filename, lineno).strip()
        if source:
            lines.append(f"    {source}")
    return lines


def _sizeof(obj: object) -> int:
    try:
        return sys.getsizeof(obj)
    except Exception:  # a broken __sizeof__ must not break the report
        return 0


def _text(report: LeakReport) -> str:
    leaks = report.leaks
    runs = f"{_count(report.runs, 'run')} after {_count(report.warmup, 'warm-up')}"
    lines = [f"check_leaks: {_count(len(leaks), 'leak')} in {report.target} ({runs})"]
    for group in report.groups:
        lines += ["", *_group_text(group, report.runs)]
    lines += [
        "",
        "per run: "
        + ", ".join(
            f"{label} {' '.join(f'{d:+d}' for d in deltas)}"
            for label, deltas in (
                ("objects", report.object_deltas),
                ("total refcount", report.refcount_deltas),
                ("allocated blocks", report.block_deltas),
            )
        ),
    ]
    if report.reference_leak:
        lines.append(
            "the total refcount grew in every run with no new object to explain it: "
            "a reference leaked on an object that already existed (a missing Py_DECREF?)"
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
    lines = [
        f"{kind}: {_count(group.count, group.type + ' object')}, {group.size} B ({pattern})"
    ]
    if group.traceback:
        lines.append(f"  allocated at {group.site}")
        lines += ["    " + line for line in group.traceback]
    else:
        lines.append("  allocated before tracing started")
    lines.append(f"  e.g. {group.example}")
    if group.held_from_c:
        top = group.chain[0]
        what = (
            "it" if len(group.chain) == 1 else f"the {top.type} {top.repr} holding it"
        )
        lines.append(f"  held by nothing visible: {what} is held from C")
    lines += [
        ("  held by " if i == 0 else "        → ") + text
        for i, text in enumerate(group.held_by)
    ]
    if group.unaccounted_references:
        lines.append(
            f"  {_count(group.unaccounted_references, 'reference')} nothing accounts for: "
            "probable refcount leak in C"
        )
    return lines


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
            zip(group.chain, group.chain[1:]), group.held_by
        ):
            edges.add(f'  o{holder.id} -> o{held.id} [label="{_dot_escape(text)}"];')
    body = "\n".join([*nodes.values(), *sorted(edges)])
    return f"digraph leaks {{\n  node [shape=box, style=filled];\n{body}\n}}\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _html(report: LeakReport) -> str:
    """A self-contained page: no scripts, no external files."""
    sections = "\n".join(
        f"<section class={'leak' if g.leak else 'once'}><pre>{html.escape(chr(10).join(_group_text(g, report.runs)))}</pre></section>"
        for g in report.groups
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

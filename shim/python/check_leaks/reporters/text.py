"""The report as text: what `str(report)` and a failing test show, and a
monitor's report.txt. The HTML pages are made of their sections."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, TypeAlias, Union

if TYPE_CHECKING:
    from ..report import (
        BlockLeak,
        DescriptorLeak,
        LeakGroup,
        LeakReport,
        NativeLeak,
        Node,
        ReferenceLeak,
    )
    from ..timeline import MonitorGroup, MonitorReport


# What a section shows. The classes are named in strings, since `report`
# imports this module; and it is a Union at run time, as stubtest asks, not
# a `type` alias.
Item: TypeAlias = Union[  # noqa: UP007, UP040
    "LeakGroup", "ReferenceLeak", "BlockLeak", "DescriptorLeak", "NativeLeak"
]


class Section(NamedTuple):
    """One part of a report: a leak, a group, or the list of what stopped
    (with no `item`)."""

    leak: bool
    item: Item | None
    lines: list[str]


# Types named in a report's one-line summary, and among the unreleased type
# references.
SHOWN_TYPES = 3
# Links of a holder chain shown at each end; the middle of a longer one is cut.
SHOWN_LINKS = 5
# Paths of leaked file descriptors shown.
SHOWN_PATHS = 10
# Groups a monitor's text report lists as bounded, most objects first.
SHOWN_BOUNDED = 10


def summary(report: LeakReport) -> str:
    by_type: dict[str, int] = {}
    for group in report.leaks:
        by_type[group.type] = by_type.get(group.type, 0) + group.count
    ranked = sorted(by_type.items(), key=lambda entry: (-entry[1], entry[0]))
    parts = [_count(count, f"{name} object") for name, count in ranked[:SHOWN_TYPES]]
    if len(ranked) > SHOWN_TYPES:
        parts.append(f"{_count(len(ranked) - SHOWN_TYPES, 'more type')}")
    if len(report.reference_leaks) == 1:
        parts.append(f"references to a {report.reference_leaks[0].type}")
    elif report.reference_leaks:
        kinds = sorted({leak.type for leak in report.reference_leaks})
        shown = ", ".join(kinds[:SHOWN_TYPES]) + (", ..." if len(kinds) > SHOWN_TYPES else "")
        parts.append(f"references to {len(report.reference_leaks)} existing objects ({shown})")
    parts += [
        f"{_count(sum(block.per_run), 'raw block')} at {block.site or 'an untraced site'}"
        for block in report.block_leaks
    ]
    if report.descriptor_leak:
        parts.append(_count(sum(report.descriptor_leak.per_run), "descriptor"))
    if report.native_leak:
        parts.append(f"{sum(report.native_leak.per_run)} B of native memory")
    if report.reference_leak:
        parts.append(f"{sum(report.refcount_deltas)} references on objects that existed")
    if report.unfinished:
        parts.append(f"unfinished ({report.stopped})")
    if not parts:
        return "no leak"
    return f"{', '.join(parts)} in {report.runs} runs ({report.leaked_bytes} B)"


def render(report: LeakReport, *, one_time: bool = True) -> str:
    count = (
        len(report.leaks)
        + len(report.reference_leaks)
        + len(report.block_leaks)
        + bool(report.descriptor_leak)
        + bool(report.native_leak)
        + report.reference_leak
    )
    runs = f"{_count(report.runs, 'run')} after {_count(report.warmup, 'warm-up')}"
    if report.runs_not_needed:
        runs += (
            f"; it left nothing, so {_count(report.runs_not_needed, 'more run')}"
            " could not show a leak"
        )
    if report.confirm_runs:
        runs += f", then {_count(report.confirm_runs, 'run')} to see what went on growing"
    if report.unfinished:
        lines = [f"check_leaks: could not check {report.target}: {report.stopped}"]
    else:
        lines = [f"check_leaks: {_count(count, 'leak')} in {report.target} ({runs})"]
        if report.stopped:
            lines.append(report.stopped)
    for section in sections(report, one_time=one_time):
        lines += ["", *section.lines]
    once = [group for group in report.groups if not group.leak and group.growth is None]
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
                *([("native bytes", report.native_deltas)] if report.native_deltas else []),
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


def sections(report: LeakReport, *, one_time: bool = True) -> list[Section]:
    """Each leak's lines, then each group's, in the order shown; with
    `one_time=False`, only the groups that leak."""
    bounded = ["not leaks, they grew and then stopped:", *(f"  {w}" for w in report.bounded)]
    return [
        *(Section(True, leak, _reference(leak)) for leak in report.reference_leaks),
        *(Section(True, leak, _block(leak)) for leak in report.block_leaks),
        *(
            [Section(True, report.descriptor_leak, _descriptor(report.descriptor_leak))]
            if report.descriptor_leak
            else []
        ),
        *(
            [Section(True, report.native_leak, _native(report.native_leak))]
            if report.native_leak
            else []
        ),
        *(
            Section(g.leak, g, _group(g, report.runs))
            for g in report.groups
            if one_time or g.leak or g.growth is not None
        ),
        *([Section(False, None, bounded)] if report.bounded else []),
    ]


def _group(group: LeakGroup, runs: int) -> list[str]:
    kind = "LEAK" if group.leak else "one-time" if group.growth is None else "bounded, not a leak"
    pattern = (
        "one per run"
        if group.per_run == [1] * runs
        else "per run: " + " ".join(map(str, group.per_run))
    )
    lines = [f"{kind}: {_count(group.count, group.type + ' object')}, {group.size} B ({pattern})"]
    if group.growth:
        lines.append(f"  {group.growth}")
    lines += _traceback(group.site, group.traceback)
    lines.append(f"  e.g. {group.example}")
    lines += _holders(group.root, group.chain, group.held_by)
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


def _reference(leak: ReferenceLeak) -> list[str]:
    rises = " ".join(f"+{n}" for n in leak.per_run)
    lines = [
        f"LEAK: references to an existing {leak.type} object ({rises} per run)",
        f"  the object: {leak.example}",
        *_growth(leak.growth),
    ]
    lines += _holders(leak.root, leak.chain, leak.held_by)
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


def _block(leak: BlockLeak) -> list[str]:
    blocks = " ".join(f"+{n}" for n in leak.per_run)
    size = " ".join(f"+{n}" for n in leak.bytes_per_run)
    lines = [f"LEAK: raw memory, {blocks} blocks ({size} B) per run, in no object"]
    return lines + _growth(leak.growth) + _traceback(leak.site, leak.traceback)


def _descriptor(leak: DescriptorLeak) -> list[str]:
    opened = " ".join(f"+{n}" for n in leak.per_run)
    lines = [f"LEAK: file descriptors, {opened} per run, never closed"]
    lines += _growth(leak.growth)
    for opening in leak.opened:
        shown = ", ".join(opening.paths[:SHOWN_PATHS])
        lines.append(
            f"  {opening.count} opened by {opening.call} "
            f"{f'from {opening.site} ' if opening.site else ''}in one more run: {shown}"
        )
        lines += ["    " + line for line in opening.traceback]
    if leak.opened:
        return lines
    return (
        lines
        + [f"  open: {path}" for path in leak.paths[:SHOWN_PATHS]]
        + ([f"  … {len(leak.paths) - SHOWN_PATHS} more"] if len(leak.paths) > SHOWN_PATHS else [])
    )


def _native(leak: NativeLeak) -> list[str]:
    grown = " ".join(f"{n:+d}" for n in leak.per_run)
    lines = [f"LEAK: native memory, {grown} B per run, allocated in C outside Python's allocators"]
    lines += _growth(leak.growth)
    if leak.unexplained:
        lines.append(f"  where: unknown; {leak.unexplained}")
    for stack in leak.stacks:
        per_run = f"{stack.allocations_per_run:g}"
        lines.append(
            f"  {_count(stack.bytes_per_run, 'byte')} in {per_run} "
            f"allocation{'s' * (per_run != '1')} per run, called from "
            f"{stack.site or 'the checker: the checked function is C code'}"
        )
        lines += ["    " + line for line in stack.traceback]
        lines += [f"      {'in' if i else 'C:'} {frame}" for i, frame in enumerate(stack.native)]
    return lines


def _growth(words: str | None) -> list[str]:
    return [f"  {words}"] if words else []


def _traceback(site: str | None, traceback: list[str]) -> list[str]:
    if not traceback:
        return ["  allocated before tracing started"]
    return [f"  allocated at {site}", *("    " + line for line in traceback)]


def _holders(root: str | None, chain: list[Node], held_by: list[str]) -> list[str]:
    lines = []
    if root is None:
        top = chain[0]
        what = "it" if len(chain) == 1 else f"the {top.type} {top.repr} holding it"
        lines.append(f"  held by nothing visible: {what} is held from C")
    links = [
        ("  held by " if i == 0 else "        → ") + (f"{n:,} × {text}" if n > 1 else text)
        for i, (n, text) in enumerate(_runs_of(held_by))
    ]
    if len(links) > 2 * SHOWN_LINKS:
        hidden = len(links) - 2 * SHOWN_LINKS
        links[SHOWN_LINKS:-SHOWN_LINKS] = [f"        … {hidden:,} more link{'s' * (hidden != 1)} …"]
    return lines + links


def _runs_of(texts: list[str]) -> list[tuple[int, str]]:
    """Identical consecutive lines as (how many, line): a proxy wrapping a
    proxy nine times reads as one link."""
    found: list[tuple[int, str]] = []
    for text in texts:
        if found and found[-1][1] == text:
            found[-1] = (found[-1][0] + 1, text)
        else:
            found.append((1, text))
    return found


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def monitor_summary(report: MonitorReport) -> str:
    """What a monitor found, in one line: the leaks by who holds them."""
    leaks = report.leaks
    if not leaks and not report.descriptor_leak and not report.native_leak:
        return f"no leak in {_done(report)}"
    by_holder: dict[str, list[str]] = {}
    for group in leaks:
        site = group.site.rsplit("/", 1)[-1] if group.site else "an untraced site"
        by_holder.setdefault(_holder(group), []).append(f"{group.type} at {site}")
    parts = [f"{', '.join(sites)} {holder}" for holder, sites in by_holder.items()]
    if report.descriptor_leak:
        parts.insert(0, "file descriptors")
    if report.native_leak:
        parts.insert(0, "native memory")
    shown = "; ".join(parts[:SHOWN_TYPES])
    if len(parts) > SHOWN_TYPES:
        shown += f"; and {_count(len(parts) - SHOWN_TYPES, 'more holder')}"
    count = _monitor_leaks(report)
    return f"{_count(count, 'leak')} in {_done(report)}: {shown}"


def _monitor_leaks(report: MonitorReport) -> int:
    return len(report.leaks) + bool(report.descriptor_leak) + bool(report.native_leak)


def _holder(group: MonitorGroup) -> str:
    if group.held_by:
        return "held by " + group.held_by[0]
    return "held by nothing visible" if group.example else "(holder not looked for)"


def render_monitor(report: MonitorReport) -> str:
    lines = [
        f"check_leaks monitor: {_count(_monitor_leaks(report), 'leak')}"
        f" in {report.target} "
        f"(pid {report.pid}): {_done(report)}"
    ]
    if report.sites_from is None:
        lines.append("allocation sites: not traced yet (nothing has grown long enough)")
    else:
        lines.append(f"allocation sites: traced from checkpoint {report.sites_from} on")
    if report.redacted:
        lines.append("secret-looking values in reprs are [redacted] (--no-redact keeps them)")
    if report.descriptor_leak:
        lines += ["", f"LEAK: file descriptors: {report.descriptor_leak}"]
    if report.native_leak:
        lines += ["", f"LEAK: native memory: {report.native_leak}"]
    for _, section in monitor_sections(report):
        lines += ["", *section]
    totals = report.totals
    lines += [
        "",
        f"process at checkpoint {totals.checkpoints[-1]}: {totals.objects[-1]:,} objects "
        f"({totals.objects[-1] - totals.objects[0]:+,} since the start), of them "
        f"{totals.new_objects[-1]:,} new ({_bytes(totals.new_bytes[-1])}); "
        f"{totals.descriptors[-1]} descriptors open; resident {_bytes(totals.resident_bytes[-1])} "
        f"({_bytes(totals.resident_bytes[-1] - totals.resident_bytes[0], sign=True)}); "
        f"native {_bytes(totals.native_bytes[-1])} "
        f"({_bytes(totals.native_bytes[-1] - totals.native_bytes[0], sign=True)})",
    ]
    if report.monitor_seconds:
        share = report.monitor_seconds / report.seconds if report.seconds else 0.0
        lines.append(
            f"the checkpoints took {report.monitor_seconds:,.1f} s ({share:.1%} of the time)"
        )
    if report.workers:
        lines += ["", "forked workers' reports:", *(f"  {worker}" for worker in report.workers)]
    return "\n".join(lines)


def monitor_sections(report: MonitorReport, *, brief: bool = True) -> list[tuple[bool, list[str]]]:
    """Each group's lines, leaks first. True marks a leak. With `brief`, a
    bounded group is one line: where it was made, and why it is bounded."""
    sections = [
        (group.leak, _timeline_group(group, report.unit))
        for group in report.groups
        if not brief or group.verdict != "bounded"
    ]
    bounded = sorted(
        (group for group in report.groups if group.verdict == "bounded"),
        key=lambda group: -group.objects[-1],
    )
    if brief and bounded:
        lines = ["not leaks, they grew and then stopped:", *map(_bounded, bounded[:SHOWN_BOUNDED])]
        if len(bounded) > SHOWN_BOUNDED:
            lines.append(
                f"  and {_count(len(bounded) - SHOWN_BOUNDED, 'more group')} (see report.json)"
            )
        sections.append((False, lines))
    return sections


def _bounded(group: MonitorGroup) -> str:
    where = f" at {group.site}" if group.site else ""
    return f"  {_count(group.objects[-1], group.type + ' object')}{where}: {group.growth}"


_VERDICT_WORDS = {
    "leak": "LEAK",
    "bounded": "bounded, not a leak",
    "undecided": "growing, undecided",
}


def _timeline_group(group: MonitorGroup, unit: str) -> list[str]:
    rate = ""
    if group.verdict != "bounded" and group.per_unit:
        rate = (
            f", {group.per_unit:+.3g} a {unit}, {_bytes(group.bytes_per_hour, sign=True)} an hour"
        )
    lines = [
        f"{_VERDICT_WORDS[group.verdict]}: {_count(group.objects[-1], group.type + ' object')} "
        f"alive, {_bytes(group.bytes[-1])}{rate}",
        f"  {group.growth}",
    ]
    if group.site is None:
        lines.append("  allocated before sites were traced")
    else:
        lines += [f"  allocated at {group.site}", *("    " + line for line in group.traceback)]
    if group.example is not None:
        lines.append(f"  e.g. {group.example}")
        lines += _holders(group.root, group.chain, group.held_by)
    return lines


def _done(report: MonitorReport) -> str:
    units = "" if report.unit == "second" else f"{report.units:,.0f} {report.unit}s, "
    return f"{units}{_count(report.checkpoints, 'checkpoint')} in {report.seconds:,.0f} s"


def _bytes(n: float, sign: bool = False) -> str:
    size = abs(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            text = f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
            break
        size /= 1024
    return ("-" if n < 0 else "+" if sign else "") + text

"""What a monitored program keeps making: the report a `Monitor` writes,
built from its checkpoints by the rule of `growth`.

Each checkpoint counts the objects made since the monitor began that are
still alive, by type, and by allocation site for the types that have begun
to grow. The time between two checkpoints is an epoch. A cache that fills
keeps objects of its first epochs until it is full, then trades old ones for
new: its count rises, then stays level. A leak keeps some of every epoch's:
its count goes on rising. A count judged on fewer than `VERDICT_CHECKPOINTS`
checkpoints gets no verdict, for a cache that fills in that time would look
the same.
"""

from __future__ import annotations

import _tracemalloc
import dataclasses
import os
from collections.abc import Collection, Sequence
from typing import Literal

from . import _shim, holders, reporters
from .growth import QUIET_RUNS, Growth
from .report import SHOWN_FRAMES, Node, _format, _holders, _user_frames
from .saferepr import safe_repr, type_name_of_class

# Checkpoints a count must be followed through for a verdict: as many as a
# count must stay level through to have stopped.
VERDICT_CHECKPOINTS = QUIET_RUNS
# A type whose new objects rose at this many checkpoints is listed in the
# report; one that rose at as many in the later half of this many
# checkpoints is followed by allocation site from then on.
SITE_RISES = 3
SITE_CHECKPOINTS = VERDICT_CHECKPOINTS // 2
# Groups whose holders are looked for, leaks first.
EXPLAINED_GROUPS = 12
# Descriptors named in a report when they leak, the newest first.
SHOWN_DESCRIPTORS = 5


@dataclasses.dataclass(frozen=True)
class MonitorGroup:
    """New objects of one type (and one allocation site, once sites are
    followed) still alive at each checkpoint."""

    type: str
    site: str | None  # "file:line"; None before sites were followed
    traceback: list[str]
    verdict: Literal["leak", "bounded", "undecided"]
    growth: str  # what the counts say, in words
    checkpoints: list[int]  # the number of each checkpoint counted
    units: list[float]  # units done by each
    seconds: list[float]  # since the monitor began
    objects: list[int]  # new objects alive at each
    bytes: list[int]  # their bytes, as the allocator was asked for them
    per_unit: float  # objects a unit, from the first count to the last
    bytes_per_hour: float
    example: str | None
    root: str | None  # what the chain starts from; None: nothing visible
    chain: list[Node]
    held_by: list[str]

    @property
    def leak(self) -> bool:
        return self.verdict == "leak"


@dataclasses.dataclass(frozen=True)
class Totals:
    """The whole process at each checkpoint."""

    checkpoints: list[int]
    seconds: list[float]
    objects: list[int]  # every live object
    new_objects: list[int]  # made since the monitor began, still alive
    new_bytes: list[int]
    descriptors: list[int]
    resident_bytes: list[int]
    native_bytes: list[int]  # what malloc holds for C code (see `_shim.native_bytes`)


@dataclasses.dataclass(frozen=True)
class MonitorReport:
    """What a monitored program made and still holds, group by group. True
    when a group is a leak."""

    target: str
    pid: int
    unit: str  # what the units count: "request", "task", "second"
    checkpoints: int
    units: float
    seconds: float
    sites_from: int | None  # the first checkpoint that counted sites
    groups: list[MonitorGroup]
    totals: Totals
    redacted: bool
    # The open descriptors, in words, when they grow by the rule.
    descriptor_leak: str | None = None
    # The native bytes, in words, when they grow by the rule.
    native_leak: str | None = None
    # Seconds the checkpoints took, collections included.
    monitor_seconds: float = 0.0
    # Reports of forked worker processes, relative to the report dir.
    workers: list[str] = dataclasses.field(default_factory=list)

    @property
    def leaks(self) -> list[MonitorGroup]:
        return [group for group in self.groups if group.leak]

    def __bool__(self) -> bool:
        return bool(self.leaks or self.descriptor_leak or self.native_leak)

    def summary(self) -> str:
        return reporters.text.monitor_summary(self)

    def __str__(self) -> str:
        return reporters.text.render_monitor(self)

    def to_json(self) -> str:
        return reporters.json.render(self)

    def to_html(self) -> str:
        return reporters.html.render_monitor(self)


def judge(
    growth: Growth, span: int = VERDICT_CHECKPOINTS
) -> Literal["leak", "bounded", "undecided"]:
    """A leak went on rising through its later half: it set a new high at
    `SITE_RISES` checkpoints there at least, and ended above everything in
    its first half by more than its tolerance. A bounded count stopped (see
    `growth`). Anything else, or anything followed through fewer than
    `span` checkpoints, is undecided: a count that swings between 9 and 10
    rises often and sets no new high, and one step at the last checkpoint
    (what a report imported, an object in flight) is one new high."""
    if growth.stopped:
        return "bounded"
    first, last = growth.runs[0], growth.runs[-1]
    if last - first < span:
        return "undecided"
    middle = first + (last - first) / 2
    pairs = list(zip(growth.runs, growth.counts, strict=True))
    earlier = max(c for r, c in pairs if r <= middle)
    high, highs = earlier, 0
    for _, count in (pair for pair in pairs if pair[0] > middle):
        if count > high:
            high, highs = count, highs + 1
    if highs >= SITE_RISES and growth.counts[-1] > earlier + growth.tolerance:
        return "leak"
    return "undecided"


def growing_types(checkpoints: _shim.Checkpoints) -> list[type]:
    """The types not watched yet whose new objects look like a leak over
    `SITE_CHECKPOINTS`: worth the cost of tracing their sites. What a
    program makes as it starts grows at its first checkpoints, then stops."""
    numbers = checkpoints.numbers
    return [
        cls
        for cls, objects, _ in checkpoints.rising(SITE_RISES)
        if judge(Growth(tuple(numbers), tuple(objects)), SITE_CHECKPOINTS) == "leak"
    ]


@dataclasses.dataclass
class _Counted:
    cls: type
    site: tuple[str, int] | None
    numbers: list[int]
    units: list[float]
    seconds: list[float]
    objects: list[int]
    bytes: list[int]
    verdict: Literal["leak", "bounded", "undecided"]
    growth: Growth


def build(
    checkpoints: _shim.Checkpoints,
    *,
    target: str,
    unit: str,
    ignore: Collection[str] = (),
) -> MonitorReport:
    """The report of `checkpoints` now: each growing group judged, and the
    holders of the first `EXPLAINED_GROUPS` looked for in the live heap."""
    numbers, seconds = checkpoints.numbers, checkpoints.seconds
    units = seconds if unit == "second" else checkpoints.units
    counted = []
    sites = checkpoints.sites(SITE_RISES)
    with_sites = {id(cls) for cls, *_ in sites}
    for cls, objects, sizes in checkpoints.types(SITE_RISES):
        if id(cls) not in with_sites:
            counted.append(_count(cls, None, numbers, units, seconds, objects, sizes))
    for cls, file, line, begin, objects, sizes in sites:
        span = slice(begin, None)
        counted.append(
            _count(cls, (file, line), numbers[span], units[span], seconds[span], objects, sizes)
        )
    # A group with nothing alive now has nothing to show.
    counted = [c for c in counted if c.objects[-1] and type_name_of_class(c.cls) not in ignore]
    order = {"leak": 0, "undecided": 1, "bounded": 2}
    counted.sort(key=lambda c: (order[c.verdict], -c.objects[-1]))
    explained = _explain(checkpoints, counted[:EXPLAINED_GROUPS])
    groups = [_group(c, unit, explained.get(i)) for i, c in enumerate(counted)]
    # Leaks with the same holder side by side: often one mistake.
    groups.sort(key=lambda g: (order[g.verdict], g.held_by[:1], -g.objects[-1]))
    begun = checkpoints.sites_from
    totals = Totals(numbers, seconds, *(list(c) for c in zip(*checkpoints.totals(), strict=True)))
    return MonitorReport(
        target=target,
        pid=os.getpid(),
        unit=unit,
        checkpoints=numbers[-1],
        units=units[-1],
        seconds=seconds[-1],
        sites_from=numbers[begun] if begun is not None else None,
        groups=groups,
        totals=totals,
        redacted=False,
        descriptor_leak=_descriptors(totals, unit, units),
        native_leak=_native(totals, unit, units, begun),
    )


def _native(
    totals: Totals, unit: str, units: Sequence[float], traced_from: int | None
) -> str | None:
    """The native bytes, in words, if they grow by the rule through the
    checkpoints taken before tracing began: tracemalloc's own tables are
    native memory, and grow with what it traces."""
    end = len(totals.checkpoints) if traced_from is None else traced_from
    if not any(totals.native_bytes[:end]):
        return None
    growth = Growth(tuple(totals.checkpoints[:end]), tuple(totals.native_bytes[:end]))
    if judge(growth) != "leak":
        return None
    first, last = growth.counts[0], growth.counts[-1]
    done = units[end - 1] - units[0]
    rate = f", {(last - first) / done:+,.0f} B a {unit}" if done else ""
    return (
        f"{first:,} B at the start, {last:,} B at checkpoint {growth.runs[-1]}{rate}: "
        f"grew at {growth.rises} of {len(growth.counts) - 1} checkpoints, outside "
        "Python's allocators (check the code that calls into C with check_leaks.check() "
        "to see where)"
    )


def _descriptors(totals: Totals, unit: str, units: Sequence[float]) -> str | None:
    """The open descriptors, in words, if they grow by the rule."""
    growth = Growth(tuple(totals.checkpoints), tuple(totals.descriptors))
    if judge(growth) != "leak":
        return None
    first, last = totals.descriptors[0], totals.descriptors[-1]
    done = units[-1] - units[0]
    rate = f", {(last - first) / done:+.3g} a {unit}" if done else ""
    newest = sorted(_open_descriptors(), key=lambda fd: -fd[0])[:SHOWN_DESCRIPTORS]
    paths = "; ".join(f"{fd} → {path}" for fd, path in newest)
    return (
        f"{first} open at the start, {last} now{rate}: grew at {growth.rises} of "
        f"{len(growth.counts) - 1} checkpoints; the newest: {paths}"
    )


def _open_descriptors() -> list[tuple[int, str]]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            found.append((int(name), os.readlink(f"/proc/self/fd/{name}")))
        except (OSError, ValueError):
            continue  # closed meanwhile: the listing's own, for one
    return found


def _count(
    cls: type,
    site: tuple[str, int] | None,
    numbers: Sequence[int],
    units: Sequence[float],
    seconds: Sequence[float],
    objects: list[int],
    sizes: list[int],
) -> _Counted:
    # A site's counts begin when sites were first counted: its checkpoints
    # are counted from there, as a type's are from the monitor's start.
    start = numbers[0] - 1 if site else 0
    growth = Growth(tuple(n - start for n in numbers), tuple(objects))
    return _Counted(
        cls, site, list(numbers), list(units), list(seconds), objects, sizes, judge(growth), growth
    )


@dataclasses.dataclass(frozen=True)
class _Explained:
    example: str
    traceback: list[tuple[str, int]]
    root: str | None
    chain: list[Node]
    held_by: list[str]
    cache: str | None  # the bounded cache the chain passes, in words


def _explain(checkpoints: _shim.Checkpoints, counted: list[_Counted]) -> dict[int, _Explained]:
    """Who holds a live member of each of `counted`, by index."""
    members = {i: checkpoints.members(c.cls, c.site) for i, c in enumerate(counted)}
    members = {i: ids for i, ids in members.items() if ids}
    if not members:
        return {}
    # Only ids are held here: the heap's own list is the one reference it
    # leaves out, and a list of members on this frame would be a root.
    heap = _shim.Heap()
    roots = holders.roots(heap)
    found = {}
    for i, made in members.items():
        made = [(m, epoch) for m, epoch in made if m in heap]
        if not made:
            continue
        # The example is one of the older half: what the latest epochs made
        # may be on its way out, what the older ones made has stayed.
        epochs = sorted(epoch for _, epoch in made)
        ids = [m for m, epoch in made if epoch <= epochs[len(epochs) // 2]]
        root, chain, held_by, objects = _holders(heap, roots, ids)
        chain_ids = [id(o) for o in objects]
        new = {
            m for m, epoch in zip(chain_ids, checkpoints.epochs(chain_ids), strict=True) if epoch
        }
        example = heap.object(chain[-1].id if chain[-1].id in ids else ids[0])
        found[i] = _Explained(
            example=safe_repr(example),
            traceback=_user_frames(_tracemalloc._get_object_traceback(example)),
            root=root,
            chain=chain,
            held_by=held_by,
            cache=holders.bounded_cache(objects, new),
        )
        del objects, example
    return found


def _group(counted: _Counted, unit: str, explained: _Explained | None) -> MonitorGroup:
    verdict, words = counted.verdict, _words(counted, unit)
    if explained is not None and explained.cache and verdict != "bounded":
        verdict, words = "bounded", f"fills a bounded cache: {explained.cache}; {words}"
    made_units = counted.units[-1] - counted.units[0]
    made_seconds = counted.seconds[-1] - counted.seconds[0]
    rise = counted.objects[-1] - counted.objects[0]
    bytes_rise = counted.bytes[-1] - counted.bytes[0]
    frames = explained.traceback if explained else []
    return MonitorGroup(
        type=type_name_of_class(counted.cls),
        site="{}:{}".format(*counted.site) if counted.site else None,
        traceback=_format(frames[-SHOWN_FRAMES:]),
        verdict=verdict,
        growth=words,
        checkpoints=counted.numbers,
        units=counted.units,
        seconds=counted.seconds,
        objects=counted.objects,
        bytes=counted.bytes,
        per_unit=rise / made_units if made_units else 0.0,
        bytes_per_hour=bytes_rise / made_seconds * 3600 if made_seconds else 0.0,
        example=explained.example if explained else None,
        root=explained.root if explained else None,
        chain=explained.chain if explained else [],
        held_by=explained.held_by if explained else [],
    )


def _words(counted: _Counted, unit: str) -> str:
    growth = counted.growth
    count = len(growth.counts) - 1
    if counted.verdict == "bounded":
        if growth.noise:
            return (
                f"rises and falls by up to {growth.noise}, and has grown no further "
                f"since checkpoint {counted.numbers[growth.runs.index(growth.peak_run)]} "
                f"(counted through checkpoint {counted.numbers[-1]})"
            )
        at = counted.numbers[growth.runs.index(growth.peak_run)]
        return (
            f"grew to {growth.peak} objects by checkpoint {at}, then stopped "
            f"(none more through checkpoint {counted.numbers[-1]})"
        )
    rate = _rate(counted, unit)
    if counted.verdict == "leak":
        return (
            f"grew at {growth.rises} of {count} checkpoints through {_units(counted, unit)}: {rate}"
        )
    return (
        f"grew at {growth.rises} of {count} checkpoints ({rate}); too few to tell a leak "
        f"from a cache that fills: a verdict needs {VERDICT_CHECKPOINTS} checkpoints "
        "and growth through their later half"
    )


def _units(counted: _Counted, unit: str) -> str:
    done = counted.units[-1] - counted.units[0]
    return f"{done:,.0f} {unit}{'' if done == 1 else 's'}"


def _rate(counted: _Counted, unit: str) -> str:
    done = counted.units[-1] - counted.units[0]
    rise = counted.objects[-1] - counted.objects[0]
    bytes_rise = counted.bytes[-1] - counted.bytes[0]
    if not done:
        return f"{rise:+,} objects"
    return f"{rise / done:+.3g} objects and {bytes_rise / done:+,.0f} B a {unit}"

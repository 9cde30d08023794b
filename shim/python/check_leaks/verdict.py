"""A report's verdicts from a confirmation's counts: each candidate that
stopped growing is no leak, and each that went on says how many runs
support it.

The probe's series are, in order: live instances of each candidate group's
type, the reference count of each object that gained references, the
references in all, the open descriptors, the native bytes, then the live
blocks of each raw block candidate (see `Candidates`)."""

from __future__ import annotations

import dataclasses

from . import _shim
from .growth import Growth
from .report import Candidates, LeakReport, Series


def all_stopped(probe: _shim.Probe, candidates: Candidates) -> bool:
    """Whether every candidate's count has stopped growing."""
    return all(growth.stopped for growth in _growths(probe, candidates).values())


def apply(
    report: LeakReport, candidates: Candidates, probe: _shim.Probe, *, stopped: str | None
) -> LeakReport:
    """`report` with each candidate judged by its counts."""
    growths = _growths(probe, candidates)
    bounded: list[str] = []
    runs = probe.runs - report.runs

    groups = []
    leaks = iter(range(len(candidates.types)))
    for group in report.groups:
        if group.leak:
            growth = growths[("type", next(leaks))]
            group = dataclasses.replace(
                group,
                leak=not growth.stopped,
                growth=growth.words(f"{group.type} objects"),
                series=_series(growth),
            )
        groups.append(group)

    def judge[T](items: list[T], kind: str, noun: str, what: str) -> list[T]:
        kept = []
        for i, item in enumerate(items):
            growth = growths[(kind, i)]
            if growth.stopped:
                bounded.append(f"{what.format(item=item)}: {growth.words(noun)}")
            else:
                kept.append(
                    dataclasses.replace(  # type: ignore[type-var]
                        item, growth=growth.words(noun), series=_series(growth)
                    )
                )
        return kept

    reference_leaks = judge(
        report.reference_leaks,
        "object",
        "references",
        "references to an existing {item.type} object",
    )
    block_leaks = judge(
        report.block_leaks, "blocks", "blocks", "raw memory allocated at {item.site}"
    )
    descriptors = [report.descriptor_leak] if report.descriptor_leak else []
    descriptor_leak = next(
        iter(judge(descriptors, "descriptors", "descriptors", "file descriptors")), None
    )
    natives = [report.native_leak] if report.native_leak else []
    native_leak = next(iter(judge(natives, "native", "bytes", "native memory")), None)
    reference_leak = report.reference_leak
    if reference_leak and growths[("references", 0)].stopped:
        reference_leak = False
        bounded.append(
            "references on objects that existed: " + growths[("references", 0)].words("references")
        )
    return dataclasses.replace(
        report,
        groups=sorted(groups, key=lambda g: not g.leak),
        reference_leaks=reference_leaks,
        block_leaks=block_leaks,
        descriptor_leak=descriptor_leak,
        native_leak=native_leak,
        reference_leak=reference_leak,
        confirm_runs=runs,
        bounded=bounded,
        stopped=stopped,
    )


def _series(growth: Growth) -> Series:
    return Series(list(growth.runs), list(growth.counts))


def _growths(probe: _shim.Probe, candidates: Candidates) -> dict[tuple[str, int], Growth]:
    """Each candidate's counts, keyed by (kind, index among its kind)."""
    runs, series = probe.series()
    at = iter(series)
    # The probe always counts these; they are candidates only sometimes.
    wanted = {
        "references": candidates.references,
        "descriptors": candidates.descriptors,
        "native": candidates.native,
    }
    found = {}
    for kind, count in (
        ("type", len(candidates.types)),
        ("object", len(candidates.objects)),
        ("references", 1),
        ("descriptors", 1),
        ("native", 1),
        ("blocks", len(candidates.block_keys)),
    ):
        for i in range(count):
            counts = next(at)
            if wanted.get(kind, True):
                found[(kind, i)] = Growth(tuple(runs), tuple(counts))
    return found

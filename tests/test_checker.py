"""The leak checker through its public API: each leak found with the right
type, allocation line and holder; clean code gives an empty report."""

import json
import sys
import tracemalloc

import check_leaks
import leaky_code
import pytest
from flavors import needs_trace_refs

pytestmark = needs_trace_refs

REPEAT = 3


def only_group(report, type_name, marker=None):
    """The one group of `type_name` objects (allocated at `marker`'s line)."""
    site = f"{leaky_code.__file__}:{leaky_code.line_of(marker)}" if marker else None
    groups = [
        g
        for g in report.groups
        if g.type == type_name and (site is None or g.site == site)
    ]
    assert len(groups) == 1, str(report)
    return groups[0]


def assert_leak(group):
    assert group.leak and group.per_run == [1] * REPEAT, group


def test_global_cache():
    report = check_leaks.check(leaky_code.global_cache, repeat=REPEAT)
    group = only_group(report, "dict", "global_cache")
    assert_leak(group)
    assert group.held_by[0] == "global `REGISTRY` of module `leaky_code`"
    assert group.held_by[1].startswith("item ") and group.held_by[1].endswith(
        " of a list"
    )
    assert len(group.held_by) == 2
    assert report and report.leaks == [group]
    # The traceback starts at the checked code, not in the checker.
    assert group.traceback[0].startswith(f'  File "{leaky_code.__file__}"')


def test_listener_registry_in_a_class_attribute():
    report = check_leaks.check(leaky_code.subscribe, repeat=REPEAT)
    group = only_group(report, "function", "listener")
    assert_leak(group)
    assert group.held_by[0] == "class attribute `listeners` of class `leaky_code.Bus`"
    assert group.held_by[1].endswith(" of a list")


def test_closure_kept_in_a_class_attribute():
    report = check_leaks.check(leaky_code.register_hook, repeat=REPEAT)
    group = only_group(report, "list", "closure_state")
    assert_leak(group)
    assert (
        group.held_by[0] == "class attribute `registered` of class `leaky_code.Hooks`"
    )
    assert group.held_by[1].startswith("key ") and group.held_by[1].endswith(
        " of a dict"
    )
    assert (
        group.held_by[2]
        == "closure variable `state` of function `register_hook.<locals>.hook`"
    )


def test_exception_traceback_kept_alive():
    report = check_leaks.check(leaky_code.remember_error, repeat=REPEAT)
    group = only_group(report, "bytearray", "traceback_payload")
    assert_leak(group)
    assert group.held_by[0] == "global `ERRORS` of module `leaky_code`"
    assert "`__traceback__` of a ValueError" in group.held_by
    assert "`tb_frame` of a traceback" in group.held_by
    assert group.held_by[-1].startswith("local `payload` of `remember_error` (")


def test_collectable_cycle_with_finalizer_is_not_a_leak():
    report = check_leaks.check(leaky_code.finalized_cycle, repeat=REPEAT)
    assert not report and report.groups == []


def test_cycle_resurrected_by_its_finalizer():
    report = check_leaks.check(leaky_code.resurrecting_cycle, repeat=REPEAT)
    group = only_group(report, "leaky_code.Phoenix", "phoenix")
    assert_leak(group)
    assert group.held_by[0] == "global `RESURRECTED` of module `leaky_code`"


def test_one_time_cache_is_not_a_leak():
    report = check_leaks.check(
        leaky_code.warm_cache, "first use", warmup=0, repeat=REPEAT
    )
    group = only_group(report, "list")
    assert not group.leak and group.per_run == [1, 0, 0]
    assert not report
    assert "one-time: 1 list object" in str(report)


def test_clean_code_gives_an_empty_report():
    report = check_leaks.check(leaky_code.clean_work, repeat=10)
    assert not report, str(report)
    assert report.groups == []


def test_report_says_what_was_recycled_during_the_runs():
    def tuples_recycled():
        check_leaks.set_freelist("tuple", True)  # the window restores it after
        for _ in range(50):
            tuple(leaky_code.ITEMS)

    report = check_leaks.check(tuples_recycled, repeat=REPEAT)
    assert report.recycled["tuple"] >= 50 * REPEAT
    assert "recycled during the runs, so some tracebacks may be stale: " in str(report)
    assert check_leaks.check(leaky_code.clean_work, repeat=REPEAT).recycled == {}


def test_other_flavours_get_a_one_line_error(monkeypatch):
    monkeypatch.delattr(sys, "getobjects")
    with pytest.raises(RuntimeError, match=r"only the debug flavour has"):
        check_leaks.check(leaky_code.clean_work)
    with pytest.raises(RuntimeError, match=r"only the debug flavour has"):
        check_leaks.watch()


def test_struct_format_cache_is_not_a_leak():
    report = check_leaks.check(leaky_code.pack_fresh_format, repeat=REPEAT)
    assert not report, str(report)


@pytest.mark.parametrize("kind", ["float", "tuple", "list"])
def test_missing_decref_in_c(leakext, kind):
    leak = getattr(leakext, f"leak_{kind}")

    def calls_c():
        leak()

    report = check_leaks.check(calls_c, repeat=REPEAT)
    group = only_group(report, kind)
    assert_leak(group)
    assert group.site == f"{__file__}:{calls_c.__code__.co_firstlineno + 1}"
    assert group.held_from_c and group.held_by == []
    assert group.unaccounted_references == REPEAT
    assert "probable refcount leak in C" in str(report)
    # Precise mode makes block counts exact: one block per leaked object.
    if kind == "float":
        assert report.block_deltas == [1] * REPEAT


def test_static_cache_in_c_is_held_from_c_but_not_a_leak(leakext):
    report = check_leaks.check(leakext.fill_static_cache, warmup=0, repeat=REPEAT)
    group = only_group(report, "list")
    assert not group.leak and group.held_from_c
    assert not report


def test_growing_static_cache_in_c(leakext):
    report = check_leaks.check(leakext.grow_static_cache, repeat=REPEAT)
    group = only_group(report, "float")
    assert_leak(group)
    assert group.held_from_c and group.chain[0].type == "list"
    assert group.held_by[0].startswith("item ") and group.held_by[0].endswith(
        " of a list"
    )
    assert group.unaccounted_references == 0


def test_reference_leaked_on_an_existing_object(leakext):
    existing = ["already here"]
    report = check_leaks.check(leakext.leak_reference, existing, repeat=REPEAT)
    assert report.groups == [] and report.refcount_deltas == [1] * REPEAT
    assert report and "a reference leaked on an object that already existed" in str(
        report
    )


class Nasty:
    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        if self.kind == "raises":
            raise RuntimeError("no repr for you")
        if self.kind == "recurses":
            return repr(self)
        return "x" * 1_000_000


NASTY = []


@pytest.mark.parametrize("kind", ["raises", "recurses", "huge"])
def test_report_survives_any_repr(kind):
    report = check_leaks.check(lambda: NASTY.append(Nasty(kind)), repeat=REPEAT)
    group = only_group(report, "test_checker.Nasty")
    assert len(group.example) <= 80
    if kind != "huge":
        assert group.example.startswith("<test_checker.Nasty object at 0x")
    assert "held by global `NASTY` of module `test_checker`" in str(report)


def test_outputs():
    report = check_leaks.check(leaky_code.global_cache, repeat=REPEAT)
    text = str(report)
    assert text.startswith(
        "check_leaks: 1 leak in leaky_code.global_cache (3 runs after 2 warm-ups)"
    )
    assert (
        f"allocated at {leaky_code.__file__}:{leaky_code.line_of('global_cache')}"
        in text
    )
    assert (
        json.loads(report.to_json())["groups"][0]["held_by"][0]
        == "global `REGISTRY` of module `leaky_code`"
    )
    dot = report.to_dot()
    assert (
        dot.startswith("digraph leaks {")
        and 'label="global `REGISTRY` of module `leaky_code`"' in dot
    )
    page = report.to_html()
    assert (
        page.startswith("<!doctype html>")
        and "global `REGISTRY` of module `leaky_code`" in page
    )
    with pytest.raises(check_leaks.LeakError) as raised:
        report.assert_no_leaks()
    assert str(raised.value) == text


def test_watch_reports_what_a_block_left_behind():
    with check_leaks.watch() as watched:
        leaky_code.global_cache()
    group = only_group(watched.report, "dict", "global_cache")
    assert (
        group.per_run == [1]
        and group.held_by[0] == "global `REGISTRY` of module `leaky_code`"
    )


def test_check_restores_precise_mode_and_tracemalloc():
    check_leaks.set_freelist("dict", False)
    try:
        assert not tracemalloc.is_tracing()
        check_leaks.check(leaky_code.clean_work)
        assert not tracemalloc.is_tracing()
        enabled = {kind: info.enabled for kind, info in check_leaks.freelists().items()}
        assert enabled == {kind: kind != "dict" for kind in check_leaks.KINDS}
    finally:
        check_leaks.set_freelist("all", True)

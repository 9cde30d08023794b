"""The leak checker through its public API: each leak found with the right
type, allocation line and holder; clean code gives an empty report."""

import atexit
import codecs
import contextlib
import functools
import gc
import html
import itertools
import json
import os
import subprocess
import sys
import tracemalloc

import check_leaks
import leaky_code
import pytest
from check_leaks import _shim, checker
from flavors import needs_pydebug, needs_trace_refs

pytestmark = needs_trace_refs

REPEAT = 3


@pytest.fixture(autouse=True)
def both_passes(request, monkeypatch):
    """Every check in this module is made both ways: the full check alone,
    then the cheap pass on the same code. Whatever leak the full check
    finds, the cheap pass must not call the heap level, or `check()` would
    skip the full check and miss it. (`@pytest.mark.as_is` opts out.)"""
    if request.node.get_closest_marker("as_is"):
        return
    real_check = check_leaks.check

    def both(func, /, *args, warmup=checker.WARMUP, repeat=checker.REPEAT, **kwargs):
        with monkeypatch.context() as forced:
            # No native counts either: only the cheap pass's untraced runs
            # take them (tests/test_native.py checks those).
            forced.setattr(checker, "_level", lambda *_, **__: (None, []))
            report = real_check(func, *args, warmup=warmup, repeat=repeat, **kwargs)
        for option in ("ignore", "max_runs", "time_multiple", "time_allowance"):
            kwargs.pop(option, None)
        call = functools.partial(func, *args, **kwargs)
        stopwatch = _shim.Stopwatch(checker.TIME_MULTIPLE, checker.TIME_ALLOWANCE)
        level = checker._level(call, stopwatch, warmup=warmup, repeat=repeat)[0] is not None
        assert not (report and level), f"the cheap pass missed:\n{report}"
        return report

    monkeypatch.setattr(check_leaks, "check", both)


def only_group(report, type_name, marker=None):
    """The one group of `type_name` objects (allocated at `marker`'s line)."""
    site = f"{leaky_code.__file__}:{leaky_code.line_of(marker)}" if marker else None
    groups = [g for g in report.groups if g.type == type_name and (site is None or g.site == site)]
    assert len(groups) == 1, str(report)
    return groups[0]


def assert_leak(group):
    assert group.leak and group.per_run == [1] * REPEAT, group


def test_global_cache():
    report = check_leaks.check(leaky_code.global_cache, repeat=REPEAT)
    group = only_group(report, "dict", "global_cache")
    assert_leak(group)
    assert group.held_by[0] == "global `REGISTRY` of module `leaky_code`"
    assert group.held_by[1].startswith("item ") and group.held_by[1].endswith(" of a list")
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
    assert group.held_by[0] == "class attribute `registered` of class `leaky_code.Hooks`"
    assert group.held_by[1].startswith("key ") and group.held_by[1].endswith(" of a dict")
    assert group.held_by[2] == "closure variable `state` of function `register_hook.<locals>.hook`"


def test_a_closure_cell_is_made_at_its_function_s_line():
    report = check_leaks.check(leaky_code.register_counter, repeat=REPEAT)
    leaky_code.Hooks.registered.clear()
    # Made in the prologue, before the function's first line runs: precise
    # mode names the function, not the line that called it (the harness).
    group = only_group(report, "cell", "closure_cell")
    assert_leak(group)
    assert group.held_by[-1] == "item 0 of a tuple"


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
    report = check_leaks.check(leaky_code.warm_cache, "first use", warmup=0, repeat=REPEAT)
    group = only_group(report, "list")
    assert not group.leak and group.per_run == [1, 0, 0]
    assert not report
    assert "one-time: 1 list object" in str(report)


def test_clean_code_gives_an_empty_report():
    report = check_leaks.check(leaky_code.clean_work, repeat=10)
    assert not report, str(report)
    assert report.groups == []


@pytest.mark.as_is
def test_clean_code_is_told_by_counters_alone(monkeypatch):
    """The cheap pass says clean code is clean without tracing it; the
    full, traced check runs only for code that moved a counter."""
    traced = []
    start = tracemalloc.start
    monkeypatch.setattr(tracemalloc, "start", lambda *a: (traced.append(a), start(*a))[1])
    report = check_leaks.check(leaky_code.clean_work, repeat=REPEAT)
    assert not report and report.groups == [] and traced == []
    # A leak grows in every run, so a first run that left nothing is enough.
    assert report.runs == 1 and report.runs_not_needed == REPEAT - 1
    assert report.object_deltas == report.refcount_deltas == report.native_deltas == [0]
    assert f"(1 run after 2 warm-ups; it left nothing, so {REPEAT - 1} more runs" in str(report)
    report = check_leaks.check(leaky_code.global_cache, repeat=REPEAT)
    assert report and traced and report.runs == REPEAT


@pytest.mark.as_is
def test_only_the_measured_runs_of_the_full_check_are_traced():
    """Tracebacks are needed only for what the measured runs make: the cheap
    pass, the full check's warm-ups and the runs that confirm growth run
    without tracemalloc."""
    traced = []

    def leaks():
        traced.append(tracemalloc.is_tracing())
        leaky_code.global_cache()

    assert check_leaks.check(leaks, warmup=2, repeat=REPEAT)
    cheap, full = traced[: 2 + REPEAT], traced[2 + REPEAT : 2 * (2 + REPEAT)]
    confirm = traced[2 * (2 + REPEAT) :]
    assert not any(cheap) and full == [False, False] + [True] * REPEAT, traced
    assert len(confirm) == checker.MAX_RUNS - REPEAT and not any(confirm)


@pytest.mark.as_is
def test_a_first_run_that_leaves_something_is_followed_by_the_others():
    """Code that replaces what its previous run made leaves an object
    after each run, none of them for good: the second run is made, and
    since no object is alive from both, a third could not show a leak."""
    replaced = []

    def replaces():
        replaced[:] = [object()]

    report = check_leaks.check(replaces, repeat=REPEAT)
    assert not report and report.runs == 2 and report.runs_not_needed == REPEAT - 2


@pytest.mark.as_is
def test_objects_a_program_froze_stay_frozen():
    """The cheap pass freezes the heap so that collections skip it, unless
    the program froze objects itself: thawing would thaw those too."""
    marker = [[]]

    def frozen():
        # The permanent generation is not among gc.get_objects()'s.
        return gc.get_freeze_count() and all(o is not marker for o in gc.get_objects())

    assert not frozen()
    gc.freeze()
    try:
        assert frozen()
        assert not check_leaks.check(leaky_code.clean_work, repeat=REPEAT)
        assert frozen()
        assert check_leaks.check(leaky_code.global_cache, repeat=REPEAT)
    finally:
        gc.unfreeze()


def test_without_the_debug_allocator_hooks_every_check_is_full(leakext):
    """PYTHONMALLOC=malloc leaves no block count: no cheap pass, no verdict lost."""
    code = (
        "import check_leaks, leakext\n"
        "def leaks(): leakext.leak_block()\n"
        "def clean(): leakext.malloc_and_free()\n"
        "print(bool(check_leaks.check(leaks)), bool(check_leaks.check(clean)))\n"
    )
    path = os.path.dirname(leakext.__file__)
    env = {**os.environ, "PYTHONMALLOC": "malloc", "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert out.split() == ["True", "False"]


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
    assert group.held_by[0].startswith("item ") and group.held_by[0].endswith(" of a list")
    assert group.unaccounted_references == 0


def test_reference_leaked_on_an_existing_object(leakext):
    existing = ["already here"]
    report = check_leaks.check(leakext.leak_reference, existing, repeat=REPEAT)
    assert report.groups == [] and report.refcount_deltas == [1] * REPEAT
    [leak] = report.reference_leaks
    assert leak.type == "list" and leak.example == "['already here']"
    assert leak.per_run == [1] * REPEAT and leak.explained == 0
    # Every call leaked one, warm-ups included.
    assert leak.unaccounted_references >= REPEAT
    assert leak.root is not None
    text = str(report)
    assert "LEAK: references to an existing list object (+1 +1 +1 per run)" in text
    assert "the object: ['already here']" in text
    assert "a missing Py_DECREF in C" in text


def test_reference_leak_is_named_next_to_a_new_object_leak(leakext):
    existing = {"already": "here"}
    report = check_leaks.check(leakext.leak_reference_and_float, existing, repeat=REPEAT)
    assert_leak(only_group(report, "float"))
    [leak] = report.reference_leaks
    assert leak.type == "dict" and leak.per_run == [1] * REPEAT


@needs_pydebug
def test_references_are_counted_on_the_objects_not_by_the_total(leakext):
    """Code built for a release ABI moves sys.gettotalrefcount() without
    changing any real count; the report must not call that a leak."""
    existing = ["already here"]

    def total_moved_by(call):
        before = sys.gettotalrefcount()
        call(existing)
        return sys.gettotalrefcount() - before

    # The misleading total, and the truth in the same run.
    assert total_moved_by(leakext.drift_reftotal) - total_moved_by(len) == 1
    report = check_leaks.check(leakext.drift_reftotal, existing, repeat=REPEAT)
    assert not report, str(report)


def test_references_added_by_a_visible_container():
    existing = ["already here"]
    keeper = []
    report = check_leaks.check(keeper.append, existing, repeat=REPEAT)
    [leak] = report.reference_leaks
    assert leak.per_run == [1] * REPEAT and leak.unaccounted_references == 0
    assert "every reference to it is visible" in str(report)


def test_objects_revived_or_tracked_early_by_c_code_do_not_crash(leakext):
    """mypyc revives a dead instance without _Py_NewReference() (patch 0015);
    multidict tracks a pooled object before filling it in (patch 0016). A
    debug build aborted on either, in the checked program. A dying object
    that its dealloc tracks again must not stay listed once it is freed
    (mypyc's subclasses of builtins): listing every object would crash."""
    code = (
        "import sys, leakext\n"
        "for _ in range(5):\n"
        "    leakext.Revived(); leakext.Pooled(); leakext.Retracked()\n"
        "listed = [o for o in sys.getobjects(0) if type(o) is leakext.Retracked]\n"
        "print('survived', len(listed))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(leakext.__file__)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (done.returncode, done.stdout) == (0, "survived 0\n"), done.stderr[-3000:]


def test_a_revived_object_that_leaks_is_reported(leakext):
    """A revived object is back among the live objects, with a new serial:
    kept once a run, it is a leak like any other."""
    kept = []

    def keeps_revived():
        leakext.Revived()  # dies, and is kept as the type's free instance
        kept.append(leakext.Revived())  # the free instance, revived

    report = check_leaks.check(keeps_revived, repeat=REPEAT)
    assert_leak(only_group(report, "leakext.Revived"))


def test_type_references_a_dealloc_keeps_are_shown_apart(leakext):
    """A heap type whose tp_dealloc never releases its type (mypyc's, and
    many hand-written ones: bpo-35810) leaves one more reference on the type
    per instance freed, which read as a leak in any code that used it. They
    keep only the type alive: shown apart, not a leak (patch 0019). A
    reference leaked on the same type by other code still is one."""
    keeps = leakext.KeepsType
    before = sys.getrefcount(keeps)
    for _ in range(10):
        keeps()
    assert sys.getrefcount(keeps) - before == 10  # the fact that misled

    report = check_leaks.check(keeps, repeat=REPEAT)
    assert not report, str(report)
    [kept] = report.unreleased_type_refs
    assert (kept.type, kept.per_run) == ("leakext.KeepsType", [1] * REPEAT)
    assert "not leaks: instances of 1 heap type were freed" in str(report)

    def keeps_and_leaks():
        keeps()
        leakext.leak_reference(keeps)

    report = check_leaks.check(keeps_and_leaks, repeat=REPEAT)
    [leak] = report.reference_leaks
    assert (leak.type, leak.per_run) == ("type", [1] * REPEAT), str(report)


def test_raw_block_leak_in_c(leakext):
    def calls_c():
        leakext.leak_block()

    report = check_leaks.check(calls_c, repeat=REPEAT)
    assert report.groups == []
    [leak] = report.block_leaks
    assert leak.per_run == [1] * REPEAT and leak.bytes_per_run == [48] * REPEAT
    assert leak.site == f"{__file__}:{calls_c.__code__.co_firstlineno + 1}"
    assert report and "LEAK: raw memory, +1 +1 +1 blocks (+48 +48 +48 B)" in str(report)


def test_raw_block_freed_is_not_a_leak(leakext):
    report = check_leaks.check(leakext.malloc_and_free, repeat=REPEAT)
    assert not report, str(report)


def test_a_bounded_cache_of_raw_blocks_is_not_a_leak(leakext):
    def calls_c():
        leakext.fill_block_cache()

    report = check_leaks.check(calls_c, repeat=REPEAT)
    # It did grow in every measured run: one block more each, up to six.
    assert report.block_deltas == [1] * REPEAT
    assert report.block_leaks == [] and not report, str(report)


def test_blocks_of_a_leaked_object_are_not_a_raw_leak():
    def keeps_growing_dicts():
        entry = {}
        entry["key"] = "value"  # a keys table, allocated at another line
        REGISTRY.append(entry)

    traced = []
    report = check_leaks.check(
        lambda: (traced.append(tracemalloc.is_tracing()), keeps_growing_dicts()),
        repeat=REPEAT,
    )
    assert report.block_leaks == [] and len(report.leaks) == 1, str(report)
    # The blocks are the leaked dicts', so none was a candidate: the runs
    # that confirm the dicts' growth were not traced, as blocks would need.
    confirm = traced[2 * (checker.WARMUP + REPEAT) :]
    assert confirm and not any(confirm), traced


REGISTRY = []
DESCRIPTORS = []


def test_descriptor_leak():
    report = check_leaks.check(
        lambda: DESCRIPTORS.append(os.open(os.devnull, os.O_RDONLY)), repeat=REPEAT
    )
    try:
        leak = report.descriptor_leak
        assert leak is not None and leak.per_run == [1] * REPEAT
        assert leak.paths == [os.devnull] * REPEAT
        assert report and "LEAK: file descriptors, +1 +1 +1 per run" in str(report)
    finally:
        for fd in DESCRIPTORS:
            os.close(fd)


def test_descriptor_closed_is_not_a_leak():
    report = check_leaks.check(lambda: os.close(os.open(os.devnull, os.O_RDONLY)), repeat=REPEAT)
    assert report.descriptor_leak is None and not report, str(report)


def test_a_generation_replaced_each_run_is_counted_once():
    report = check_leaks.check(leaky_code.replace_generation, repeat=REPEAT)
    group = only_group(report, "leaky_code.Member", "generation")
    assert group.count == 20 and group.per_run == [0, 0, 20] and not group.leak
    assert not report


def test_holder_chain_at_any_depth():
    report = check_leaks.check(leaky_code.extend_deep_chain, repeat=REPEAT)
    group = only_group(report, "leaky_code.Link", "deep_chain")
    assert_leak(group)
    assert group.held_by[0] == "global `DEEP_CHAIN` of module `leaky_code`"
    # The example is the member closest to the global: the first measured
    # run's link, after the chain's 20,000 and the two warm-ups'.
    assert len(group.held_by) == 1 + 20_000 + 2
    # The same link, over and over, reads as one line.
    assert "        → 20,002 × attribute `next` of a `leaky_code.Link` instance" in str(report)


@pytest.mark.parametrize(
    "kind, example",
    [
        ("tuple", "<half-built tuple of 3: item 1 is NULL>"),
        ("list", "<half-built list of 2: item 0 is NULL>"),
    ],
)
def test_half_built_container_gives_a_report(leakext, kind, example):
    leak = getattr(leakext, f"leak_half_built_{kind}")

    def calls_c():
        with contextlib.suppress(ValueError):
            leak()

    report = check_leaks.check(calls_c, repeat=REPEAT)
    group = only_group(report, kind)
    assert_leak(group)
    assert group.example == example
    assert group.held_from_c
    assert example in str(report) and html.escape(example) in report.to_html()


REGISTERED = []


def test_atexit_callback_is_named():
    def register():
        callback = lambda: None  # noqa: E731
        REGISTERED.append(callback)
        atexit.register(callback)

    try:
        report = check_leaks.check(register, repeat=REPEAT)
    finally:
        for callback in REGISTERED:
            atexit.unregister(callback)
        REGISTERED.clear()
    group = only_group(report, "function")
    assert_leak(group)
    # The closest root: atexit's own reference, not this module's list.
    assert group.held_by == ["a callback registered with `atexit`"]
    assert group.unaccounted_references == 0 and not group.held_from_c


def test_codec_search_function_is_named():
    found = []

    def register():
        search = lambda name: None  # noqa: E731
        found.append(search)
        codecs.register(search)

    try:
        report = check_leaks.check(register, repeat=REPEAT)
    finally:
        for search in found:
            codecs.unregister(search)
    group = only_group(report, "function")
    assert group.held_by[0] == "the codec search path (`codecs.register`)"
    assert group.unaccounted_references == 0 and not group.held_from_c


def test_audit_hook_is_named():
    """In a child: an audit hook cannot be removed."""
    code = (
        "import sys, check_leaks\n"
        "report = check_leaks.check(lambda: sys.addaudithook(lambda *a: None))\n"
        "print(report)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "LEAK: 3 function objects" in out
    assert "  held by the audit hooks (`sys.addaudithook`)" in out
    assert "nothing accounts for" not in out


class Lazy:
    @functools.cached_property
    def value(self):
        return [1, 2]


LAZY = []


def test_cached_property_dict_is_accounted_for():
    """3.13 keeps an instance's attributes inline; the dict made to view
    them is reported by no tp_traverse."""

    def keep():
        lazy = Lazy()
        lazy.value
        LAZY.append(lazy)

    report = check_leaks.check(keep, repeat=REPEAT)
    group = only_group(report, "dict")
    assert_leak(group)
    assert group.unaccounted_references == 0 and not group.held_from_c


@functools.lru_cache(maxsize=1000)
def cached(n):
    return [n]


NUMBERS = itertools.count(10**6)


def test_lru_cache_entries_are_accounted_for():
    report = check_leaks.check(lambda: cached(next(NUMBERS)), repeat=REPEAT)
    assert {g.type for g in report.groups} == {
        "list",
        "int",
        "functools._lru_list_elem",
    }
    for group in report.groups:
        assert group.unaccounted_references == 0 and not group.held_from_c, group
        assert group.held_by[0] == "global `cached` of module `test_checker`"
        # It holds 1,000 at most.
        assert group.growth.startswith("fills a bounded cache: `test_checker.cached`")
        assert group.growth.endswith(" of 1000)") and not group.leak
    assert not report


def test_census_lists_a_reference_leaked_in_c(leakext):
    class Marked:
        pass

    marked = Marked()
    before = check_leaks.census()
    leakext.leak_reference(marked)
    after = check_leaks.census()
    [group] = [g for g in after.groups if g.type.endswith("Marked")]
    assert group.objects == 1 and group.references == 1
    assert not any(g.type.endswith("Marked") for g in before.groups)
    assert str(after).splitlines()[-1] == (
        f"census: {after.objects} objects, {after.unaccounted} with unaccounted references"
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


class HostileMeta(type):
    def __repr__(cls):
        raise RuntimeError("no class repr")

    def __getattribute__(cls, name):
        if name in ("__module__", "__qualname__", "__name__"):
            raise RuntimeError("no class attributes")
        return super().__getattribute__(name)


class Hostile(metaclass=HostileMeta):
    """Every hook the report could call raises."""

    def __eq__(self, other):
        raise RuntimeError("no eq")

    def __hash__(self):
        raise RuntimeError("no hash")

    def __getattribute__(self, name):
        raise RuntimeError("no attributes")

    def __sizeof__(self):
        raise RuntimeError("no size")

    def __repr__(self):
        raise RuntimeError("no repr")


HOSTILE = []


def test_report_survives_hostile_objects():
    def keep():
        hostile = Hostile()
        HOSTILE.append({"key": hostile})

    report = check_leaks.check(keep, repeat=REPEAT)
    group = only_group(report, "test_checker.Hostile")
    assert_leak(group)
    assert group.example.startswith("<test_checker.Hostile object at 0x")
    assert group.held_by[-1] == "key 'key' of a dict"


def test_outputs():
    report = check_leaks.check(leaky_code.global_cache, repeat=REPEAT)
    text = str(report)
    assert text.startswith(
        "check_leaks: 1 leak in leaky_code.global_cache (3 runs after 2 warm-ups, "
        f"then {checker.MAX_RUNS - REPEAT} runs to see what went on growing)"
    )
    assert f"allocated at {leaky_code.__file__}:{leaky_code.line_of('global_cache')}" in text
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
    assert page.startswith("<!doctype html>") and "global `REGISTRY` of module `leaky_code`" in page
    with pytest.raises(check_leaks.LeakError) as raised:
        report.assert_no_leaks()
    assert str(raised.value) == text


def test_html_page_is_its_template_filled_with_escaped_text():
    target = "<a> & $title ${sections}"
    page = check_leaks.LeakReport.level(
        target=target, warmup=2, runs=3, of=3, native_deltas=[]
    ).to_html()
    # A `$` in the report is text, not one of the template's placeholders.
    title = f"check_leaks: 0 leaks in {html.escape(target)} (3 runs after 2 warm-ups)"
    assert f"<title>{title}</title>" in page and f"<h1>{title}</h1>" in page
    assert "<p>Nothing was left behind.</p>" in page
    assert "<p>per run: objects +0 +0 +0, references +0 +0 +0," in page


KEPT = []


def test_summary_names_the_most_leaked_types_in_one_line():
    def keeps_four_types():
        KEPT.append(({"d": 1}, [1], {1}, bytearray(4)))

    try:
        report = check_leaks.check(keeps_four_types, repeat=REPEAT)
    finally:
        KEPT.clear()
    summary = report.summary()
    assert summary.startswith(
        "3 bytearray objects, 3 dict objects, 3 list objects, 2 more types in 3 runs ("
    ), summary
    assert summary.endswith(f"({report.leaked_bytes} B)") and report.leaked_bytes > 0
    assert check_leaks.check(leaky_code.clean_work).summary() == "no leak"


def test_summary_counts_many_reference_leaks_in_one_line():
    """A mypyc wheel leaks a reference on each of hundreds of its classes:
    the one line counts them, and names their kinds, not each one."""
    existing = [[], [], (object(),), "an existing str", b"bytes"]

    def keeps_references():
        KEPT.extend(existing)

    try:
        report = check_leaks.check(keeps_references, repeat=REPEAT)
    finally:
        KEPT.clear()
    assert len(report.reference_leaks) == 5, str(report)
    assert report.summary().startswith(
        "references to 5 existing objects (bytes, list, str, ...) in 3 runs"
    ), report.summary()


def test_watch_reports_what_a_block_left_behind():
    with check_leaks.watch() as watched:
        leaky_code.global_cache()
    group = only_group(watched.report, "dict", "global_cache")
    assert group.per_run == [1] and group.held_by[0] == "global `REGISTRY` of module `leaky_code`"
    # The dict the block kept, and nothing of the checker's own.
    report = watched.report
    assert report is not None and report.leaks == [group], str(report)
    assert not report.reference_leaks and not report.block_leaks, str(report)


def test_watch_of_a_block_that_keeps_nothing_is_clean():
    leaky_code.clean_work()  # fills its one-time cache
    # Twice: the first window in a process is the one that meets first-time
    # allocations of the checker's own.
    for _ in range(2):
        with check_leaks.watch() as watched:
            leaky_code.clean_work()
        assert watched.report is not None and not watched.report, str(watched.report)
    with pytest.raises(RuntimeError, match=r"^a check_leaks.watch\(\) window is used once"):
        with watched:
            pass


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

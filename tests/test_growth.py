"""Verdicts on growth: what grew in every measured run is a leak only if it
goes on growing. Each case that stops has a twin that does not, and the
slowing code gets a verdict instead of a hang."""

import html
import re
import time

import check_leaks
import growing_code
import pytest
from check_leaks import checker
from check_leaks.growth import QUIET_RUNS, Growth
from flavors import needs_trace_refs

pytestmark = needs_trace_refs


def leak_of(report, type_name):
    [group] = [g for g in report.groups if g.type == type_name and g.per_run == [1, 1, 1]]
    return group


def test_a_full_lru_cache_is_not_a_leak():
    report = check_leaks.check(growing_code.fill_lru_cache)
    group = leak_of(report, "list")
    assert not group.leak and not report, str(report)
    assert group.growth.startswith(
        "fills a bounded cache: `growing_code._bounded` (`lru_cache`, "
    ) and group.growth.endswith(" of 128)")
    # Told by the bound, not by running to it.
    assert report.confirm_runs == 0


def test_an_unbounded_lru_cache_is_a_leak_named_by_its_function():
    report = check_leaks.check(growing_code.grow_lru_cache)
    group = leak_of(report, "list")
    assert group.leak and report, str(report)
    assert group.held_by[:2] == [
        "global `_unbounded` of module `growing_code`",
        "in the cache of `growing_code._unbounded` (`lru_cache`)",
    ]
    runs = checker.MAX_RUNS
    assert group.growth.startswith(f"grew through {runs} runs (+1 list objects a run), higher at ")
    assert f"then {runs - 3} runs to see what went on growing" in str(report)


def test_the_standard_library_s_pattern_caches_are_bounded():
    report = check_leaks.check(growing_code.compile_a_new_pattern)
    group = leak_of(report, "re.Pattern")
    assert not group.leak and not report, str(report)
    # re keeps each new pattern in both its caches; the chain may go
    # through either, whichever the search meets first.
    assert re.match(r"fills a bounded cache: `re\._cache2?`, compiled patterns \(", group.growth)
    report = check_leaks.check(growing_code.match_a_new_glob)
    assert not report and report.confirm_runs == 0, str(report)
    words = {g.growth for g in report.groups if g.per_run == [1, 1, 1]}
    assert any(
        w.startswith("fills a bounded cache: `fnmatch._compile_pattern` (`lru_cache`, ")
        for w in words
    )


def test_strptime_s_format_cache_is_bounded():
    """_strptime keeps up to 5 compiled formats and clears them; re keeps
    the patterns too, up to 512, more than the runs can fill."""
    report = check_leaks.check(growing_code.parse_a_new_format)
    assert not report, str(report)
    group = leak_of(report, "re.Pattern")
    assert group.growth.startswith(
        "fills a bounded cache: `_strptime._regex_cache`, compiled formats ("
    )


def test_a_deque_with_a_maxlen_is_not_a_leak():
    report = check_leaks.check(growing_code.fill_deque)
    group = leak_of(report, "dict")
    assert not group.leak and not report, str(report)
    assert group.growth.startswith("fills a bounded cache: a `deque` (")
    assert group.growth.endswith(" of its maxlen 100)")


def test_a_growing_list_is_a_leak():
    report = check_leaks.check(growing_code.grow_list)
    assert leak_of(report, "dict").leak and report, str(report)


def test_a_buffer_flushed_every_50_entries_is_not_a_leak():
    report = check_leaks.check(growing_code.add_to_flushed_buffer)
    group = leak_of(report, "tuple")
    assert not group.leak and not report, str(report)
    # It falls back every 50 entries, and never climbs past that.
    assert group.growth.startswith("rises and falls by up to ")
    assert ", and has grown no further since run " in group.growth
    assert report.confirm_runs < checker.MAX_RUNS - 3
    assert "bounded, not a leak: 3 tuple objects" in str(report)


def test_a_buffer_never_flushed_is_a_leak():
    report = check_leaks.check(growing_code.add_to_unflushed_buffer)
    group = leak_of(report, "tuple")
    assert group.leak and report, str(report)
    assert "higher at " in group.growth


def test_a_third_party_lru_cache_stops_growing():
    report = check_leaks.check(growing_code.fill_third_party_cache)
    group = leak_of(report, "list")
    assert not group.leak and not report, str(report)
    assert ", and has grown no further since run " in group.growth


def test_a_c_cache_pruned_every_40_calls_is_not_a_leak(leakext):
    report = check_leaks.check(leakext.add_to_pruned_cache)
    group = leak_of(report, "float")
    assert group.held_from_c and not group.leak and not report, str(report)
    assert ", and has grown no further since run " in group.growth


def test_raw_blocks_freed_every_40_calls_are_not_a_leak(leakext):
    def calls_c():
        leakext.add_to_pruned_blocks()

    report = check_leaks.check(calls_c)
    assert report.block_leaks == [] and not report, str(report)
    [words] = report.bounded
    assert words.startswith(f"raw memory allocated at {__file__}:")
    assert ", and has grown no further since run " in words
    for text in (str(report), report.to_html()):
        assert "not leaks, they grew and then stopped:" in text


def test_raw_blocks_kept_for_ever_are_a_leak(leakext):
    def calls_c():
        leakext.leak_block()

    report = check_leaks.check(calls_c)
    [leak] = report.block_leaks
    assert report and leak.growth.startswith(f"grew through {checker.MAX_RUNS} runs"), str(report)


def test_code_that_slows_down_gets_a_verdict():
    growing_code.LAYERS.clear()
    report = check_leaks.check(growing_code.slow_down)
    assert report, str(report)
    assert report.stopped.startswith("stopped after ")
    # Each run walks twice the paths of the last; how long that takes
    # depends on what else the machine does.
    assert re.search(r": each took about (twice|\d+\.\d times) the last \(", report.stopped)
    assert report.stopped.endswith("something grows that every run walks")
    # What grew is reported, held where it is.
    group = leak_of(report, "tuple")
    assert group.held_by[0] == "global `LAYERS` of module `growing_code`"
    assert report.stopped in str(report)
    assert f"<p>{html.escape(report.stopped)}</p>" in report.to_html()


def test_code_that_grows_at_a_steady_pace_is_not_said_to_slow_down():
    growing_code.STEADY.clear()
    report = check_leaks.check(growing_code.grow_steadily)
    assert report and report.stopped is None, str(report)


def test_the_time_budget_ends_a_check_with_a_verdict():
    def slow_leak():
        growing_code.grow_list()
        time.sleep(0.01)

    report = check_leaks.check(slow_leak, time_multiple=0, time_allowance=0.5)
    assert report and leak_of(report, "dict").leak, str(report)
    # 0.5 s of runs of 10 ms each, not the 500 runs it would get otherwise.
    assert report.runs + report.confirm_runs < 100
    assert report.stopped.startswith("stopped after ")
    assert "the check's time budget ran out (0.50 s = 0 × the first run's " in report.stopped


def test_a_check_out_of_time_before_its_measured_runs_fails_and_says_why():
    report = check_leaks.check(growing_code.grow_list, time_multiple=0, time_allowance=0)
    assert report and report.unfinished, str(report)
    assert str(report).startswith(
        "check_leaks: could not check growing_code.grow_list: stopped after 1 run"
    )


def test_max_runs_below_the_measured_runs_is_refused():
    with pytest.raises(ValueError, match="need max_runs >= repeat"):
        check_leaks.check(growing_code.grow_list, max_runs=2)


@pytest.mark.parametrize(
    "counts, stopped",
    [
        # +1 a run to the end: a leak.
        ([3 + i for i in range(30)], False),
        # Flat from the start, for long enough.
        ([5] * 30, True),
        # Up to 40 at run 40, then a saw-tooth below that.
        ([min(i, 40) if i <= 40 else 40 - (i % 13) for i in range(3, 100)], True),
        # A saw-tooth riding on a leak: new peaks keep coming.
        ([i + (i % 13) * 3 for i in range(3, 200)], False),
    ],
)
def test_the_rule_for_growth_that_stopped(counts, stopped):
    runs = tuple(range(3, 3 + len(counts)))
    growth = Growth(runs, tuple(counts))
    assert growth.stopped is stopped, growth.words("objects")


def test_a_pruned_cache_sampled_at_other_points_of_its_cycle_has_stopped():
    # SQLAlchemy's compiled cache, new engine per call, as counted: it fills
    # to run 121, then prunes back and refills; the samples' highest creeps
    # up by less than the falls.
    runs = (3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 97, 121, 151, 188)
    runs += (235, 293, 366, 457, 500)
    counts = (10103, 10127, 10151, 10175, 10199, 10223, 10271, 10319, 10391, 10463, 10559)
    counts += (10679, 10823, 11015, 11255, 11543, 11903, 12359, 12935, 12426, 13314, 13218)
    counts += (13386, 12690, 12426, 13458)
    growth = Growth(runs, counts)
    assert growth.noise == 960 and growth.peak_run == 121 and growth.stopped
    assert growth.words("dict objects") == (
        "rises and falls by up to 960 dict objects, and has grown no further since run 121 "
        "(counted through run 500)"
    )
    # The same rises with nothing falling: each new high is growth.
    assert not Growth(runs, tuple(sorted(counts))).stopped


def test_a_count_that_steps_up_by_one_long_after_it_stopped_has_stopped():
    # The ints a check of typing.Union[int, new class] left: they follow
    # typing's lru_cache up to run 121, then one more int at run 293.
    runs = (3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 97, 121, 151, 188)
    runs += (235, 293, 366, 457, 500)
    counts = (3940, 3941, 3942, 3943, 3944, 3945, 3947, 3949, 3952, 3955, 3959, 3964, 3970)
    counts += (3978, 3988, 4000, 4015, 4034, 4058, 4058, 4058, 4058, 4059, 4059, 4059, 4059)
    growth = Growth(runs, counts)
    assert growth.stopped and growth.peak_run == 121
    assert growth.words("int objects") == (
        "grew for 121 runs, then stopped (+118 int objects after the measured runs, "
        "1 more by run 293)"
    )
    # A leak of one every 20 runs does not stop, however slow.
    slow = tuple(3940 + run // 20 for run in runs)
    assert not Growth(runs, slow).stopped


def test_too_few_runs_to_tell_are_said_to_be_too_few():
    growth = Growth((3, 4, 5, 6), (100, 104, 90, 96))
    assert not growth.stopped
    assert growth.words("str objects") == (
        "no higher after 3 more runs than after the measured ones, "
        "but too few runs were made to tell that it stopped"
    )


def test_growth_must_stay_down_as_long_as_it_took_to_rise():
    # Peak at run 60, flat since: not yet at run 100, but at run 120.
    runs = tuple(range(3, 121))
    counts = tuple(min(r, 60) for r in runs)
    assert not Growth(runs[: 100 - 3], counts[: 100 - 3]).stopped
    assert Growth(runs, counts).stopped
    assert Growth(runs, counts).words("objects") == (
        "grew for 60 runs, then stopped (+57 objects after the measured runs, "
        "none more through run 120)"
    )
    # And for QUIET_RUNS at the least.
    assert not Growth((3, 3 + QUIET_RUNS - 1), (5, 5)).stopped


def test_a_dict_resized_at_a_later_line_owns_its_key_table():
    """The table a dict grows into is allocated where it grew, not where the
    dict was made: it is the dict's memory, not raw memory in no object."""
    report = check_leaks.check(growing_code.keep_a_dict_resized_elsewhere)
    assert report.block_leaks == [] and report.bounded == [], str(report)
    group = leak_of(report, "dict")
    assert group.leak and group.held_by[0] == "global `RESIZED` of module `growing_code`"


def test_two_groups_of_one_type_are_each_followed():
    report = check_leaks.check(growing_code.grow_two_groups_of_one_type)
    groups = [g for g in report.groups if g.type == "dict" and g.per_run == [1, 1, 1]]
    assert len(groups) == 2 and all(g.leak for g in groups), str(report)
    assert all(g.growth.startswith(f"grew through {checker.MAX_RUNS} runs") for g in groups)

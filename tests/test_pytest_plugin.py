"""The pytest plugin, end to end: pytest runs in a subprocess with the
plugin loaded from its entry point, as a user's pytest would."""

import json
import re

import pytest
from flavors import needs_trace_refs

pytestmark = needs_trace_refs

# pytest-asyncio warns at startup unless configured, which -W error turns
# into a crash; tests that do not use it leave it out.
WITHOUT_ASYNCIO = ("-p", "no:asyncio")

MODULE = """
import pytest

CACHE = []


def test_leaks():
    CACHE.append({"n": 1})


def test_clean():
    sum(float(i) for i in range(100))
"""


def line_of(text):
    """The line of MODULE holding `text`, as pytester writes the file."""
    return next(n for n, line in enumerate(MODULE.strip().splitlines(), 1) if text in line)


@pytest.fixture
def test_module(pytester):
    return pytester.makepyfile(test_module=MODULE)


def test_check_leaks_fails_exactly_the_leaking_test(pytester, test_module):
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*check_leaks: 1 leak in test_module.test_leaks (3 runs after 2 warm-ups, then 497 *",
            "LEAK: 3 dict objects*",
            f"  allocated at {test_module}:{line_of('CACHE.append')}",
            "  held by global `CACHE` of module `test_module`",
            "*FAILED test_module.py::test_leaks*",
        ]
    )


def test_without_the_option_nothing_is_checked(pytester, test_module):
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_marker_checks_one_test(pytester):
    pytester.makepyfile(
        test_marked="""
        import pytest

        CACHE = []

        @pytest.mark.check_leaks(repeat=4, warmup=1)
        def test_marked():
            CACHE.append([])

        def test_unmarked():
            CACHE.append([])
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*1 leak in test_marked.test_marked (4 runs after 1 warm-up, then 496 runs *"]
    )


def test_marker_ignores_types(pytester, test_module):
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.check_leaks(ignore=["dict"]))
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_fixture_setup_and_teardown_are_not_blamed(pytester):
    pytester.makepyfile(
        test_fixture="""
        import pytest

        OPEN = []

        @pytest.fixture
        def resource():
            OPEN.append({"opened": True})
            yield OPEN[-1]
            OPEN.pop()

        def test_uses_resource(resource):
            assert resource["opened"] and len(OPEN) == 1
        """
    )
    pytester.runpytest_subprocess("--check-leaks").assert_outcomes(passed=1)


def test_a_fixture_that_leaks_per_use_is_reported_at_its_line(pytester):
    pytester.makepyfile(
        test_fixture="""
        import pytest

        KEPT = []

        @pytest.fixture
        def resource():
            KEPT.append({"opened": True})
            return KEPT[-1]

        def test_uses_resource(resource):
            assert resource["opened"]
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  allocated at *test_fixture.py:7"])


def test_works_with_x_k_and_parametrize(pytester):
    pytester.makepyfile(
        test_params="""
        import pytest

        CACHE = []

        @pytest.mark.parametrize("n", [1, 2])
        def test_leaks(n):
            CACHE.append([n])

        def test_clean():
            pass
        """
    )
    pytester.runpytest_subprocess("--check-leaks").assert_outcomes(passed=1, failed=2)
    pytester.runpytest_subprocess("--check-leaks", "-x").assert_outcomes(failed=1)
    pytester.runpytest_subprocess("--check-leaks", "-k", "clean").assert_outcomes(
        passed=1, deselected=2
    )


def test_summary_lists_leaky_tests_worst_first(pytester):
    pytester.makepyfile(
        test_two="""
        SMALL, BIG = [], []

        def test_small():
            SMALL.append([1])

        def test_big():
            BIG.append(bytearray(10_000))

        def test_clean():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*= check_leaks =*",
            "LEAK test_two.py::test_big: 3 bytearray objects in 3 runs (3* B)",
            "LEAK test_two.py::test_small: 3 list objects in 3 runs (* B)",
            "check_leaks: 3 checked, 2 leaking",
        ]
    )


def test_a_test_that_skips_on_a_repetition_is_listed_as_not_checked(pytester):
    pytester.makepyfile(
        test_skips="""
        import pytest

        CALLS = []

        def test_skips_once():
            CALLS.append(None)
            if len(CALLS) == 2:
                pytest.skip("flaky service")
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "NOT CHECKED test_skips.py::test_skips_once: passed, but skipped on repetition 2",
            "check_leaks: 0 checked, 0 leaking, 1 not checked",
        ]
    )


def test_report_directory_holds_each_leaky_test_s_report_and_an_index(pytester, test_module):
    out = pytester.path / "reports"
    result = pytester.runpytest_subprocess("--check-leaks", f"--check-leaks-report={out}")
    result.assert_outcomes(passed=1, failed=1)
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html",
        "test_module.py_test_leaks.html",
        "test_module.py_test_leaks.json",
    ]
    report = json.loads((out / "test_module.py_test_leaks.json").read_text())
    assert report["target"] == "test_module.test_leaks" and report["groups"][0]["leak"]
    assert "CACHE" in (out / "test_module.py_test_leaks.html").read_text()
    # The index links the leaky test's page, and lists no clean test.
    index = (out / "index.html").read_text()
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', index) == [
        ("test_module.py_test_leaks.html", "test_module.py::test_leaks")
    ]
    assert "test_clean" not in index and "3 dict objects in 3 runs" in index
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o600"}
    result.stdout.fnmatch_lines(
        [
            f"    {out}/test_module.py_test_leaks.json",
            f"    {out}/index.html",
            "check_leaks: 2 checked*",
        ]
    )


def test_works_under_xdist(pytester, test_module):
    result = pytester.runpytest_subprocess("--check-leaks", "-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK test_module.py::test_leaks: 3 dict objects in 3 runs (* B)",
            "check_leaks: 2 checked, 1 leaking",
        ]
    )


@pytest.mark.parametrize(
    "marker",
    ["pytest.mark.asyncio", "pytest.mark.anyio"],
    ids=["pytest-asyncio", "anyio"],
)
def test_async_tests_of_real_plugins_are_checked(pytester, marker):
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_async=f"""
        import asyncio
        import pytest

        CACHE = []

        @{marker}
        async def test_async_leaks():
            await asyncio.sleep(0)
            CACHE.append({{"n": 1}})

        @{marker}
        async def test_async_clean():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks", "-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["LEAK test_async.py::test_async_leaks: 3 dict objects*"])


def test_async_tests_a_plugin_runs_are_checked(pytester):
    pytester.makeconftest(
        """
        import asyncio
        import inspect

        def pytest_pyfunc_call(pyfuncitem):
            # A minimal async runner, as pytest-asyncio provides.
            if inspect.iscoroutinefunction(pyfuncitem.obj):
                asyncio.run(pyfuncitem.obj())
                return True
        """
    )
    pytester.makepyfile(
        test_async="""
        CACHE = []

        async def test_async_leaks():
            CACHE.append({"n": 1})

        async def test_async_clean():
            pass
        """
    )
    # No warning either: suites that turn warnings into errors would fail.
    result = pytester.runpytest_subprocess("--check-leaks", "-W", "error", *WITHOUT_ASYNCIO)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*check_leaks: 1 leak in *test_async_leaks*"])


def test_warnings_are_not_leaks_and_are_shown_once(pytester):
    pytester.makepyfile(
        test_warns="""
        import warnings

        def test_warns():
            warnings.warn("old api", DeprecationWarning)
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*DeprecationWarning: old api*"])


def test_warnings_turned_into_errors_still_fail(pytester):
    pytester.makepyfile(
        test_warns="""
        import warnings

        def test_warns():
            warnings.warn("old api", DeprecationWarning)
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks", "-W", "error", *WITHOUT_ASYNCIO)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DeprecationWarning: old api*"])


def test_no_leak_check_marker_exempts_a_test(pytester):
    pytester.makepyfile(
        test_exempt="""
        import pytest

        CACHE = []

        @pytest.mark.no_leak_check
        def test_leaks_on_purpose():
            CACHE.append({"n": 1})
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["check_leaks: 0 checked, 0 leaking, 1 exempt (no_leak_check)"])
    # Without the check, nothing is exempt from it, and nothing is said.
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "check_leaks" not in result.stdout.str()


def test_ini_options(pytester):
    pytester.makeini(
        """
        [pytest]
        check_leaks = true
        check_leaks_repeat = 4
        check_leaks_warmup = 1
        check_leaks_ignore =
            test_ini.Ignored
        """
    )
    pytester.makepyfile(
        test_ini="""
        CACHE = []

        class Ignored:
            pass

        def test_leaks():
            CACHE.append({"n": 1})

        def test_leaks_ignored():
            CACHE.append(Ignored())
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*check_leaks: 1 leak in test_ini.test_leaks (4 runs after 1 warm-up, then 496 runs *"]
    )
    # The command line wins over the ini file.
    result = pytester.runpytest_subprocess("--check-leaks-repeat", "2")
    result.stdout.fnmatch_lines(["*(2 runs after 1 warm-up, then 498 runs*"])


def test_a_bad_ini_value_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\ncheck_leaks = true\ncheck_leaks_repeat = many\n")
    pytester.makepyfile(test_bad="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: check_leaks: check_leaks_repeat must be an integer, got 'many'"]
    )


def test_testcase_methods_and_doctests_are_checked(pytester):
    pytester.makepyfile(
        test_kinds='''
        import unittest

        KEPT = []

        def keep(n):
            """
            >>> keep(2)
            4
            """
            KEPT.append([n])
            return 2 * n

        class Case(unittest.TestCase):
            def setUp(self):
                self.fresh = {"made": "by setUp"}  # torn down with the case

            def test_method(self):
                self.assertEqual(self.fresh["made"], "by setUp")
                keep(1)

            def test_clean(self):
                self.assertEqual(len(self.fresh), 1)
        '''
    )
    result = pytester.runpytest_subprocess("--check-leaks", "--doctest-modules", "-v")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_kinds.py::test_kinds.keep FAILED*",
            "*test_kinds.py::Case::test_clean PASSED*",
            "*test_kinds.py::Case::test_method FAILED*",
        ]
    )
    assert "1 leak in" in result.stdout.str()


@pytest.mark.parametrize(
    "fixture_use",
    [
        "monkeypatch.setattr(os, 'sep', '/')",
        "logging.getLogger('t').warning('once'); assert len(caplog.records) == 1",
        "(tmp_path / 'made').mkdir()",
        "request.addfinalizer(lambda: None)",
        "capsys.readouterr(); print('x'); assert capsys.readouterr().out == 'x\\n'",
    ],
)
def test_function_fixtures_are_fresh_for_each_repetition(pytester, fixture_use):
    pytester.makepyfile(
        test_fixtures=f"""
        import logging
        import os

        def test_uses(monkeypatch, caplog, tmp_path, request, capsys):
            {fixture_use}
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(passed=1)


def test_holder_chains_name_the_fixture_not_the_plugin(pytester):
    pytester.makepyfile(
        test_fx="""
        import pytest

        @pytest.fixture(scope="session")
        def registry():
            return []

        def test_adds(registry):
            registry.append({"n": 1})
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 3 dict objects*",
            "*",
            "*",
            "*",
            "  held by fixture `registry` (session scope)",
        ]
    )
    assert "pytest_plugin.py" not in result.stdout.str()


def test_subtests_are_reported_once_and_not_blamed(pytester):
    pytester.makepyfile(
        test_sub="""
        from unittest import TestCase

        class T(TestCase):
            def test_sub_test(self):
                for i in range(3):
                    with self.subTest(i=i):
                        self.assertEqual(i, i)

        def test_fixture(subtests):
            for i in range(3):
                with subtests.test(i=i):
                    assert i == i
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks", "-q")
    # Subtests log their own reports; the repetitions' are not counted.
    result.stdout.fnmatch_lines(
        ["check_leaks: 2 checked, 0 leaking", "*2 passed, 6 subtests passed in *"]
    )


def test_a_failure_on_a_repetition_names_it(pytester):
    pytester.makepyfile(
        test_once="""
        DONE = []

        def test_only_once():
            assert not DONE
            DONE.append(1)
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*check_leaks: the test failed on repetition 2 (of 2 warm-ups and 3 measured runs)*"]
    )


def test_pytest_reports_the_first_run(pytester):
    """The run pytest reports is the first, as without the plugin: its
    output, its logs and its failure, with no word of repetitions."""
    pytester.makepyfile(
        test_first="""
        import itertools, logging

        PASSING, FAILING = itertools.count(1), itertools.count(1)

        def test_passes():
            run = next(PASSING)
            print("printed by run", run)
            logging.getLogger("t").warning("logged by run %d", run)

        def test_fails_the_first_time():
            assert next(FAILING) != 1

        def test_last():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks", "-rP", *WITHOUT_ASYNCIO)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["printed by run 1", "*logged by run 1"])
    result.stdout.no_fnmatch_line("*by run 2*")
    result.stdout.fnmatch_lines(["E       assert 1 != 1"])
    result.stdout.no_fnmatch_line("*repetition*")


def test_a_clean_test_runs_no_more_than_it_needs(pytester):
    """Two warm-ups and one measured run that leaves nothing, which is the
    run pytest reports too; the last test of a module runs once more, at
    the end, so that its teardown can end the module's fixtures."""
    pytester.makepyfile(
        test_runs="""
        import logging

        def test_first():
            logging.getLogger("t").warning("captured, then dropped")
            print("RUN first")

        def test_last():
            print("RUN last")
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks", "-s", *WITHOUT_ASYNCIO)
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count("RUN first") == 3 and out.count("RUN last") == 4, out


def test_a_failure_in_the_traced_pass_names_it(pytester):
    pytester.makepyfile(
        test_late="""
        CALLS = []

        def test_fails_late():
            CALLS.append({"n": 1})  # a leak: the cheap pass moves, the traced pass follows
            assert len(CALLS) != 7
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*check_leaks: the test failed on repetition 2 (of 2 warm-ups and 3 measured runs, "
            "in the traced pass that follows when one moved a counter)*"
        ]
    )


def test_one_time_groups_are_summed_up_unless_asked_for(pytester):
    pytester.makepyfile(
        test_once="""
        CALLS = []
        CACHE = []
        LEAKED = []

        def test_leaks_and_fills_a_cache():
            CALLS.append(None)
            # The traced pass's first measured run: after the cheap pass's
            # two warm-ups and three runs, and its own two warm-ups.
            if len(CALLS) == 8:
                CACHE.append(["filled once"])
            LEAKED.append({"n": 1})
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "LEAK: 3 dict objects*",
            "and 1 one-time group (1 object, * B) that did not grow in every run, not shown",
        ]
    )
    assert "one-time: 1 list object" not in result.stdout.str()
    result = pytester.runpytest_subprocess("--check-leaks", "--check-leaks-one-time")
    result.stdout.fnmatch_lines(["one-time: 1 list object*"])


BUFFERED = """
EVENTS = []


def test_buffers():
    EVENTS.append(("event", len(EVENTS)))
    if len(EVENTS) == 30:
        EVENTS.clear()
"""


def test_a_test_whose_growth_stops_passes_and_max_runs_sets_the_bound(pytester):
    """A buffer flushed every 30 events grows in every measured run: it
    passes, unless the runs allowed are too few to see it stop."""
    pytester.makepyfile(test_buffered=BUFFERED)
    # Time enough for a loaded machine: only the runs are in question here.
    allowance = ("--check-leaks-time-allowance", "60")
    result = pytester.runpytest_subprocess("--check-leaks", *allowance)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["check_leaks: 1 checked, 0 leaking"])
    result = pytester.runpytest_subprocess(
        "--check-leaks", "--check-leaks-max-runs", "12", *allowance
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  grew through 12 runs (+1 tuple objects a run), higher at *"])


STACKING = """
STACK = []


def test_stacks():
    STACK.append(object())
    assert len(STACK) < 60, "stacked too deep"
"""


def test_a_test_that_fails_once_its_growth_is_deep_enough_is_a_leak(pytester):
    """It grows until its own assertion fails: the runs after the measured
    ones stop there, and the growth they saw is the verdict."""
    pytester.makepyfile(test_stacking=STACKING)
    result = pytester.runpytest_subprocess("--check-leaks", "--check-leaks-time-allowance", "60")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "check_leaks: 1 leak in test_stacking.test_stacks (3 runs after 2 warm-ups, *",
            "stopped after 59 runs: the next one failed (test_stacking.py:6: AssertionError)",
            "LEAK: 3 object objects*",
            "  grew through * runs (+1 object objects a run), higher at *",
        ]
    )


def test_a_time_allowance_that_is_not_a_number_stops_the_session(pytester):
    pytester.makepyfile(test_stacking=STACKING)
    result = pytester.runpytest_subprocess("-o", "check_leaks_time_allowance=soon")
    result.stderr.fnmatch_lines(["*check_leaks_time_allowance must be a number of seconds*'soon'*"])

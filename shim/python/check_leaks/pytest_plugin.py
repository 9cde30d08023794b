"""pytest plugin: `pytest --check-leaks` (or `check_leaks = true` in the ini
file) checks every test, `@pytest.mark.check_leaks(repeat=..., warmup=...,
ignore=...)` checks one, and `@pytest.mark.no_leak_check` exempts one.

A checked test runs warm-up times, then up to repeat times while cheap
counters of the heap are recorded, each time with fresh function-scoped
fixtures. If a counter moved, it runs as many times again under tracemalloc
for the full report. pytest reports the first run, with the verdict on it:
a leak fails the test with the report, and so does a failure on any
repetition.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pathlib
import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

# Not exported by pytest, but the way to re-run an item's whole protocol, as
# pytest-rerunfailures does.
from _pytest.runner import runtestprotocol

from . import reportdir
from .checker import (
    MAX_RUNS,
    REPEAT,
    TEST_TIME_ALLOWANCE,
    TIME_MULTIPLE,
    WARMUP,
    RunFailed,
    check,
)
from .holders import named_roots
from .report import LeakReport
from .reporters import html


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("check_leaks")
    group.addoption(
        "--check-leaks",
        action="store_true",
        default=None,
        help="check every test for leaks (ini: check_leaks = true)",
    )
    group.addoption(
        "--check-leaks-repeat",
        type=int,
        metavar="N",
        help=f"measured runs per test (ini: check_leaks_repeat; default: {REPEAT})",
    )
    group.addoption(
        "--check-leaks-one-time",
        action="store_true",
        help="also show, in a failing test's report, what survived only some runs",
    )
    group.addoption(
        "--check-leaks-warmup",
        type=int,
        metavar="N",
        help=f"runs before measuring (ini: check_leaks_warmup; default: {WARMUP})",
    )
    group.addoption(
        "--check-leaks-max-runs",
        type=int,
        metavar="N",
        help="runs in all through which what grew in every measured run must go on growing "
        f"to be a leak (ini: check_leaks_max_runs; default: {MAX_RUNS})",
    )
    group.addoption(
        "--check-leaks-time-allowance",
        type=float,
        metavar="SECONDS",
        help=f"a test's runs may take {TIME_MULTIPLE:g} times its first run plus this "
        f"(ini: check_leaks_time_allowance; default: {TEST_TIME_ALLOWANCE:g})",
    )
    group.addoption(
        "--check-leaks-report",
        metavar="DIR",
        help="write each leaky test's report to DIR, as JSON and HTML",
    )
    parser.addini("check_leaks", "check every test for leaks", type="bool", default=False)
    parser.addini(
        "check_leaks_repeat", "measured runs per test", type="string", default=str(REPEAT)
    )
    parser.addini("check_leaks_warmup", "runs before measuring", type="string", default=str(WARMUP))
    parser.addini(
        "check_leaks_time_allowance",
        "seconds a test's runs may take beyond a multiple of its first run",
        type="string",
        default=str(TEST_TIME_ALLOWANCE),
    )
    parser.addini(
        "check_leaks_max_runs",
        "runs in all through which growth must go on to be a leak",
        type="string",
        default=str(MAX_RUNS),
    )
    parser.addini(
        "check_leaks_ignore",
        "types whose objects are never reported, one qualified name a line",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"check_leaks(repeat={REPEAT}, warmup={WARMUP}, ignore=()): check this test "
        "for leaks, ignoring objects of the given types",
    )
    config.addinivalue_line("markers", "no_leak_check: never check this test for leaks")
    config.pluginmanager.register(_Summary(), "check_leaks-summary")
    # A bad ini value stops the session before any test runs.
    for name in ("check_leaks_repeat", "check_leaks_warmup", "check_leaks_max_runs"):
        try:
            int(_setting(config, name))
        except ValueError:
            raise pytest.UsageError(
                f"check_leaks: {name} must be an integer, got {_setting(config, name)!r}"
            ) from None
    allowance = _setting(config, "check_leaks_time_allowance")
    try:
        if not 0 <= float(allowance) < float("inf"):
            raise ValueError(allowance)
    except ValueError:
        raise pytest.UsageError(
            "check_leaks: check_leaks_time_allowance must be a number of seconds, at least 0, "
            f"got {allowance!r}"
        ) from None


def _setting(config: pytest.Config, name: str) -> Any:
    """A command-line option if given, else its ini value."""
    value = config.getoption(name)
    return config.getini(name) if value is None else value


# What the check of a test found, for the terminal summary: it travels on
# the call report's user_properties, so that it reaches the controller
# under pytest-xdist.
_PROPERTY = "check_leaks"


def _wanted(item: pytest.Item) -> bool:
    """Whether `item` is to be checked."""
    if item.get_closest_marker("no_leak_check") is not None:
        return False
    return item.get_closest_marker("check_leaks") is not None or bool(
        _setting(item.config, "check_leaks")
    )


class _RunEnded(RunFailed):
    """A repetition failed or skipped: the check stops there."""

    def __init__(self, run: int, report: pytest.TestReport) -> None:
        super().__init__(run, report)
        self.run = run
        self.report = report

    def __str__(self) -> str:
        # What a report says when the runs after the measured ones end here.
        lines = self.report.longreprtext.strip().splitlines()
        return f"{self.report.outcome}" + (f" ({lines[-1][:200]})" if lines else "")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a checked item's whole protocol, setup and teardown included, once
    per repetition. Function-scoped fixtures are made fresh for each
    repetition and torn down after it, so what they make is gone before the
    heap is recorded; higher-scoped fixtures stay up, set up by the first
    run. Any kind of test is repeated this way: plain functions,
    unittest.TestCase methods with their setUp and tearDown, doctests, and
    async tests a plugin runs.

    The first run is the one pytest reports, as if the plugin were not
    there: its warnings, subtests and debugger stops go through, and its
    reports are logged once the verdict is on them. Only where that run's
    teardown must also end wider-scoped fixtures (the last test of its
    module or class) does one more run at the end take its place."""
    if not _wanted(item):
        # Exempt from a check that is on, not merely unchecked.
        if item.get_closest_marker("no_leak_check") is not None and bool(
            _setting(item.config, "check_leaks")
        ):
            item.user_properties.append((_PROPERTY, {"exempt": True}))
        return None
    marker = item.get_closest_marker("check_leaks")
    config = item.config
    options: dict[str, Any] = {
        "repeat": int(_setting(config, "check_leaks_repeat")),
        "warmup": int(_setting(config, "check_leaks_warmup")),
        "max_runs": int(_setting(config, "check_leaks_max_runs")),
        "time_allowance": float(_setting(config, "check_leaks_time_allowance")),
        "ignore": config.getini("check_leaks_ignore"),
        **(marker.kwargs if marker else {}),
    }
    runs = 0
    parent: Any = item.parent
    # Tearing down to the next item ends no more than tearing down to the
    # parent does, which ends the function-scoped fixtures only.
    first_is_logged = nextitem is not None and parent in nextitem.listchain()
    logged: list[pytest.TestReport] = []
    # A doctest's runner clears its namespace after each run.
    doctest = getattr(item, "dtest", None)
    namespace = dict(doctest.globs) if doctest is not None else {}

    def repetition() -> None:
        nonlocal runs
        runs += 1
        if doctest is not None:
            doctest.globs.update(namespace)
        with _run_of(item, logged=runs == 1 and first_is_logged):
            # Tearing down to the parent ends the function-scoped fixtures
            # and keeps those of wider scope.
            reports = runtestprotocol(item, nextitem=parent, log=False)
        if runs == 1 and first_is_logged:
            logged[:] = reports
        _drop_stale_finishers(item)
        for report in reports:
            if not report.passed:
                raise _RunEnded(runs, report)

    # The report names the test, not this function.
    test = getattr(item, "obj", None)
    repetition.__module__ = getattr(test, "__module__", "") or ""
    repetition.__qualname__ = getattr(test, "__qualname__", None) or item.nodeid
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    verdict: str | None = None
    outcome: dict[str, Any] = {}
    try:
        with named_roots(lambda: _fixture_values(item.session)):
            leaks = check(repetition, **options)
    except _RunEnded as ended:
        if ended.report.failed and not (ended.run == 1 and first_is_logged):
            # The cheap pass, then, if a counter moved, the traced pass. (A
            # run after those ends the check with a verdict instead.)
            per_pass = options["warmup"] + options["repeat"]
            run, traced = (ended.run - 1) % per_pass + 1, ended.run > per_pass
            pass_ = ", in the traced pass that follows when one moved a counter"
            when = (
                f"on repetition {run} "
                f"(of {options['warmup']} warm-ups and {options['repeat']} measured runs"
                f"{pass_ if traced else ''})"
            )
            verdict = (
                f"check_leaks: the test failed {when}, though it may pass once:\n"
                f"{ended.report.longreprtext}"
            )
        elif ended.report.when == "call" and not ended.report.failed:
            # Skipped (or xfailed) inside the test on a repetition: if it
            # passes when logged, the summary says it went unchecked.
            outcome = {"unchecked": f"skipped on repetition {ended.run}"}
    else:
        outcome = {"leaked": bool(leaks)}
        if leaks:
            one_time = config.getoption("check_leaks_one_time")
            verdict = leaks.text(one_time=one_time)
            outcome |= {"summary": leaks.summary(), "bytes": leaks.leaked_bytes}
            directory = config.getoption("check_leaks_report")
            if directory:
                outcome["files"] = _write_report(leaks, directory, item.nodeid)
    if not logged:
        if doctest is not None:
            doctest.globs.update(namespace)
        with _run_of(item, logged=True):
            logged[:] = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in logged:
        if report.when == "call":
            _conclude(report, verdict, outcome)
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _conclude(report: pytest.TestReport, verdict: str | None, outcome: dict[str, Any]) -> None:
    """Put what the check found on the test's call report: a leak or a
    failure on a repetition fails a test that passed."""
    if outcome and (report.passed or "unchecked" not in outcome):
        report.user_properties.append((_PROPERTY, outcome))
    if verdict is None:
        return
    if report.passed:
        report.outcome = "failed"
        report.longrepr = verdict
    else:
        report.sections.append(("check_leaks", verdict))


@contextlib.contextmanager
def _run_of(item: pytest.Item, *, logged: bool) -> Iterator[None]:
    """One run of the item, which leaves pytest's per-run state of the item
    as it found it. A run pytest does not report also keeps its warnings
    and subtests to itself."""
    with _run_state_restored(item):
        if logged:
            yield
            return
        # pytest records every warning, so each run's would stay alive and
        # be blamed: each run records its own and drops them. The logged
        # run shows them once, and the filters still apply, so "error"
        # raises.
        with warnings.catch_warnings(record=True), _subtests_unlogged(item):
            yield


@contextlib.contextmanager
def _run_state_restored(item: pytest.Item) -> Iterator[None]:
    """pytest keeps some state of a run until the next run replaces it: the
    item's stash (the tmp_path plugin's outcome of the teardown), its user
    properties and report sections, the logging plugin's capture handlers'
    record list and stream, and the root logger's handler list (which
    `removeHandler` replaces since 3.13.6, gh-79366, when the logging plugin
    takes its handlers off). Left alone, every run would leave an
    object alive, and the cheap pass could not stop after a first measured
    run that leaves nothing (a leak grows in every run, so such a run proves
    there is none). After the run, each is put back as it was; the run's
    reports hold their own copies."""
    storage: dict[Any, object] = item.stash._storage
    stash = dict(storage)
    properties = len(item.user_properties)
    sections = len(item._report_sections)
    plugin = item.config.pluginmanager.get_plugin("logging-plugin")
    handlers = [
        handler
        for handler in (getattr(plugin, name, None) for name in _CAPTURE_HANDLERS)
        if handler is not None
    ]
    captured = [(handler.records, handler.stream) for handler in handlers]
    root = logging.getLogger()
    root_handlers, root_had = root.handlers, list(root.handlers)
    try:
        yield
    finally:
        if root.handlers is not root_handlers and root.handlers == root_had:
            root_handlers[:] = root_had
            root.handlers = root_handlers
        for key in [key for key in storage if key not in stash]:
            del storage[key]
        storage.update(stash)
        del item.user_properties[properties:]
        del item._report_sections[sections:]
        for handler, (records, stream) in zip(handlers, captured, strict=True):
            handler.records, handler.stream = records, stream


_CAPTURE_HANDLERS = ("caplog_handler", "report_handler")


@contextlib.contextmanager
def _subtests_unlogged(item: pytest.Item) -> Iterator[None]:
    """Subtests (unittest's `subTest` and the `subtests` fixture) log their
    reports themselves, through the item's hook proxy, whatever
    `runtestprotocol`'s `log` says: each repetition's would be counted and
    kept by the terminal reporter. While a repetition runs, the proxy drops
    them."""
    session = item.session
    gethookproxy = session.gethookproxy

    def unlogged(path: Any) -> Any:
        return _Unlogged(gethookproxy(path))

    # On the instance, in front of the method, until the repetition ends
    # (setattr: mypy refuses assigning to a method).
    setattr(session, "gethookproxy", unlogged)  # noqa: B010
    try:
        yield
    finally:
        delattr(session, "gethookproxy")


class _Unlogged:
    """A hook proxy that neither logs a report nor interacts on one."""

    def __init__(self, hook: Any) -> None:
        self._hook = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hook, name)

    @staticmethod
    def pytest_runtest_logreport(**_: Any) -> None:
        pass

    @staticmethod
    def pytest_exception_interact(**_: Any) -> None:
        pass


def _drop_stale_finishers(item: pytest.Item) -> None:
    """pytest gives each wider-scoped fixture a finish() of every
    function-scoped fixture that used it, once per use, and keeps it after
    that fixture is torn down (pytest#12135): once per repetition here.
    Those of fixtures already torn down do nothing; they are dropped. All
    fixtures, not only the item's: a fixture can ask for another by name
    (pytest-asyncio's runner does)."""
    for fixturedef in _all_fixturedefs(item.session):
        if fixturedef.scope != "function" and fixturedef._finalizers:
            finalizers = fixturedef._finalizers
            finalizers[:] = [f for f in finalizers if not _finishes_a_torn_down(f)]


def _fixture_values(session: pytest.Session) -> Iterator[tuple[object, str]]:
    """The values of the fixtures that are set up, as roots a test author
    knows by name: a chain through one reads "fixture `registry` (session
    scope)", not the plugin's locals."""
    for fixturedef in _all_fixturedefs(session):
        cached = fixturedef.cached_result
        if cached is not None and cached[0] is not None:
            yield cached[0], f"fixture `{fixturedef.argname}` ({fixturedef.scope} scope)"


def _all_fixturedefs(session: pytest.Session) -> Iterator[Any]:
    """Every fixture definition pytest knows of: by name and node since
    pytest 9, by name before."""
    manager = getattr(session, "_fixturemanager", None)
    by_node = getattr(manager, "_arg2node2fixturedefs", None)
    if by_node is not None:
        for nodes in by_node.values():
            for fixturedefs in nodes.values():
                yield from fixturedefs
    else:
        for fixturedefs in getattr(manager, "_arg2fixturedefs", {}).values():
            yield from fixturedefs


def _finishes_a_torn_down(finalizer: object) -> bool:
    if not isinstance(finalizer, functools.partial):
        return False
    owner = getattr(finalizer.func, "__self__", None)
    return (
        getattr(finalizer.func, "__name__", None) == "finish"
        and isinstance(owner, pytest.FixtureDef)
        and owner.scope == "function"
        and owner.cached_result is None
    )


def _write_report(leaks: LeakReport, directory: str, nodeid: str) -> list[str]:
    """The report as DIR/<node id>.json and .html; the paths written."""
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_"))
    paths = []
    for suffix, text in ((".json", leaks.to_json()), (".html", leaks.to_html())):
        reportdir.replace_file(pathlib.Path(stem + suffix), text)
        paths.append(stem + suffix)
    return paths


class _Summary:
    """Gathers what each checked test found, on the controller too under
    pytest-xdist (the outcome rides on the call report), and lists the
    leaky tests at the end, the worst (most bytes leaked) first."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, outcome in report.user_properties:
            if name == _PROPERTY and report.when == "call" and isinstance(outcome, dict):
                self.outcomes.setdefault(report.nodeid, outcome)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.outcomes:
            return
        leaky = sorted(
            ((nodeid, o) for nodeid, o in self.outcomes.items() if o.get("leaked")),
            key=lambda entry: (-entry[1]["bytes"], entry[0]),
        )
        checked = sum(1 for o in self.outcomes.values() if "leaked" in o)
        exempt = sum(1 for o in self.outcomes.values() if o.get("exempt"))
        write = terminalreporter.write_line
        terminalreporter.section("check_leaks")
        unchecked = sorted(
            (nodeid, o["unchecked"]) for nodeid, o in self.outcomes.items() if "unchecked" in o
        )
        for nodeid, outcome in leaky:
            write(f"LEAK {nodeid}: {outcome['summary']}")
            for path in outcome.get("files", ()):
                write(f"    {path}")
        for nodeid, why in unchecked:
            write(f"NOT CHECKED {nodeid}: passed, but {why}")
        done = (
            f"check_leaks: {checked} checked, {len(leaky)} leaking"
            + (f", {len(unchecked)} not checked" if unchecked else "")
            + (f", {exempt} exempt (no_leak_check)" if exempt else "")
        )
        directory = terminalreporter.config.getoption("check_leaks_report")
        if directory and leaky:
            index = pathlib.Path(directory, "index.html")
            reportdir.replace_file(index, html.render_index(leaky, index.parent, done))
            write(f"    {index}")
        write(done)

"""pytest plugin: `pytest --check-leaks` (or `check_leaks = true` in the ini
file) checks every test, `@pytest.mark.check_leaks(repeat=..., warmup=...,
ignore=...)` checks one, and `@pytest.mark.no_leak_check` exempts one.

A checked test's body runs warm-up times, then repeat times while the heap is
recorded. Fixtures are set up once, outside the check, so what their setup
allocates is never blamed on the test. A leak fails the test with the report.
"""

from __future__ import annotations

import functools
import inspect
import unittest
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from .checker import REPEAT, WARMUP, check


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
        "--check-leaks-warmup",
        type=int,
        metavar="N",
        help=f"runs before measuring (ini: check_leaks_warmup; default: {WARMUP})",
    )
    parser.addini("check_leaks", "check every test for leaks", type="bool", default=False)
    parser.addini(
        "check_leaks_repeat", "measured runs per test", type="string", default=str(REPEAT)
    )
    parser.addini(
        "check_leaks_warmup", "runs before measuring", type="string", default=str(WARMUP)
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
    config.addinivalue_line(
        "markers", "no_leak_check: never check this test for leaks"
    )
    # A bad ini value stops the session before any test runs.
    for name in ("check_leaks_repeat", "check_leaks_warmup"):
        try:
            int(_setting(config, name))
        except ValueError:
            raise pytest.UsageError(
                f"check_leaks: {name} must be an integer, got {_setting(config, name)!r}"
            ) from None


# Set on an item whose body the plugin ran under check().
_CHECKED = pytest.StashKey[bool]()
# (node id, why) of each test that passed without being checked.
_UNCHECKED = pytest.StashKey[list[tuple[str, str]]]()


def _wanted(item: pytest.Item) -> bool:
    """Whether `item` is to be checked."""
    if item.get_closest_marker("no_leak_check") is not None:
        return False
    return item.get_closest_marker("check_leaks") is not None or bool(
        _setting(item.config, "check_leaks")
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and report.passed and _wanted(item):
        if not item.stash.get(_CHECKED, False):
            unchecked = item.config.stash.setdefault(_UNCHECKED, [])
            unchecked.append((item.nodeid, _why_unchecked(item)))
    return report


def _why_unchecked(item: pytest.Item) -> str:
    test = getattr(item, "obj", None)
    if inspect.iscoroutinefunction(test) or inspect.isasyncgenfunction(test):
        return "an async test whose runner gave pytest no function to repeat"
    if isinstance(item, pytest.Function):
        if item.cls is not None and issubclass(item.cls, unittest.TestCase):
            return "a unittest.TestCase method, run by unittest"
        return "its function was run by another plugin"
    return f"a {type(item).__name__}, which the plugin cannot repeat"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    unchecked = terminalreporter.config.stash.get(_UNCHECKED, [])
    if unchecked:
        terminalreporter.section("check_leaks: unchecked")
        for nodeid, why in unchecked:
            terminalreporter.line(f"{nodeid}: {why}")
        terminalreporter.line(
            f"check_leaks: {len(unchecked)} passed unchecked; their leaks are not known"
        )


def _setting(config: pytest.Config, name: str) -> Any:
    """A command-line option if given, else its ini value."""
    value = config.getoption(name)
    return config.getini(name) if value is None else value


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not _wanted(pyfuncitem):
        return None
    marker = pyfuncitem.get_closest_marker("check_leaks")
    config = pyfuncitem.config
    options: dict[str, Any] = {
        "repeat": int(_setting(config, "check_leaks_repeat")),
        "warmup": int(_setting(config, "check_leaks_warmup")),
        "ignore": config.getini("check_leaks_ignore"),
        **(marker.kwargs if marker else {}),
    }
    test = pyfuncitem.obj
    if inspect.iscoroutinefunction(test) or inspect.isasyncgenfunction(test):
        # Calling it would only make a coroutine; its own runner must run it.
        # The terminal summary lists it as unchecked.
        return None
    arguments = {
        name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames
    }

    first_warnings: list[warnings.WarningMessage] | None = None

    # Wrapped, so a fixture named like an option of check() cannot clash.
    @functools.wraps(test)
    def run_test() -> None:
        nonlocal first_warnings
        # pytest records every warning a test emits, so each repeated run's
        # would stay alive and be blamed. Each run records its own instead;
        # the filters still apply, so "error" still raises.
        with warnings.catch_warnings(record=True) as caught:
            test(**arguments)
        if first_warnings is None:
            first_warnings = caught

    pyfuncitem.stash[_CHECKED] = True
    report = check(run_test, **options)
    # Shown once, as without the plugin: the first run's.
    for caught in first_warnings or ():
        warnings.warn_explicit(
            caught.message, caught.category, caught.filename, caught.lineno
        )
    if report:
        pytest.fail(str(report), pytrace=False)
    return True

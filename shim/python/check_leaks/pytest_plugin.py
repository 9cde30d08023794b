"""pytest plugin: `pytest --check-leaks` checks every test, and
`@pytest.mark.check_leaks(repeat=..., warmup=..., ignore=...)` checks one.

A checked test's body runs warm-up times, then repeat times while the heap is
recorded. Fixtures are set up once, outside the check, so what their setup
allocates is never blamed on the test. A leak fails the test with the report.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import pytest

from .checker import check


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("check_leaks")
    group.addoption(
        "--check-leaks", action="store_true", help="check every test for leaks"
    )
    group.addoption(
        "--check-leaks-repeat",
        type=int,
        default=3,
        metavar="N",
        help="measured runs per test (default: 3)",
    )
    group.addoption(
        "--check-leaks-warmup",
        type=int,
        default=2,
        metavar="N",
        help="runs before measuring (default: 2)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "check_leaks(repeat=3, warmup=2, ignore=()): check this test for leaks, ignoring objects of the given types",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("check_leaks")
    config = pyfuncitem.config
    if marker is None and not config.getoption("check_leaks"):
        return None
    options: dict[str, Any] = {
        "repeat": config.getoption("check_leaks_repeat"),
        "warmup": config.getoption("check_leaks_warmup"),
        **(marker.kwargs if marker else {}),
    }
    test = pyfuncitem.obj
    if inspect.iscoroutinefunction(test) or inspect.isasyncgenfunction(test):
        # Calling it would only make a coroutine; its own runner must run it.
        warnings.warn(
            pytest.PytestWarning(
                f"check_leaks cannot check async test {pyfuncitem.nodeid}; it ran unchecked"
            )
        )
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

    report = check(run_test, **options)
    # Shown once, as without the plugin: the first run's.
    for caught in first_warnings or ():
        warnings.warn_explicit(
            caught.message, caught.category, caught.filename, caught.lineno
        )
    if report:
        pytest.fail(str(report), pytrace=False)
    return True

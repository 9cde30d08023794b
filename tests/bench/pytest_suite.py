"""Time `pytest --check-leaks` on a generated suite: many clean tests, a few
leaky ones, and a heap of HEAP objects built when the suite is collected.

Run by `cargo xtask bench` on the patched interpreter, as
`pytest_suite.py HEAP`. Each way is one pytest run in a child process,
minus a `--collect-only` run of the same suite (start-up, collection and
the heap). It prints `name value` lines:

- `plain_ms`, `checked_ms`: per test, without and with `--check-leaks`;
- `overhead_ms`: what checking adds to a clean test beyond the runs it
  makes (each costing what a plain test costs): its warm-ups and the one
  measured run that leaves nothing, the first of which pytest reports.
"""

import pathlib
import subprocess
import sys
import tempfile
import time

from check_leaks.checker import WARMUP

CLEAN = 100
LEAKY = 3

CONFTEST = """
# About {heap} objects that live through the whole session.
HEAP = [[float(i)] for i in range({lists})]
"""

TESTS = """
import pytest

LEAKED = []


@pytest.mark.parametrize("n", range({clean}))
def test_clean(n, tmp_path):
    (tmp_path / "data").write_text(str(n))
    assert sorted({{"b": n, "a": -n}}.items())[0][0] == "a"


@pytest.mark.parametrize("n", range({leaky}))
def test_leaky(n):
    LEAKED.append({{"n": n}})
"""


# Plain pytest, without plugins the test requirements bring (pytest-asyncio
# warns at start-up unless configured).
PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:xdist")


def seconds(*args: str, cwd: pathlib.Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *PYTEST, *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        check=False,  # the leaky tests fail under --check-leaks
    )
    return time.perf_counter() - start


def main(heap: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = pathlib.Path(tmp)
        # Each list holds a float: two objects, on top of pytest's own.
        (suite / "conftest.py").write_text(CONFTEST.format(heap=heap, lists=heap // 2))
        (suite / "test_suite.py").write_text(TESTS.format(clean=CLEAN, leaky=LEAKY))
        clean = ("-k", "clean")
        startup = seconds("--collect-only", *clean, cwd=suite)
        plain = (seconds(*clean, cwd=suite) - startup) / CLEAN
        checked = (seconds("--check-leaks", *clean, cwd=suite) - startup) / CLEAN
        # The whole suite once more, leaks and all, so that the bench fails
        # loudly if the leaky tests ever stop being reported.
        whole = subprocess.run(
            [sys.executable, *PYTEST, "--check-leaks"],
            cwd=suite,
            capture_output=True,
            text=True,
            check=False,
        )
        if f"{LEAKY} failed, {CLEAN} passed" not in whole.stdout:
            sys.exit(f"unexpected outcome of the generated suite:\n{whole.stdout}")
    print("plain_ms", plain * 1e3)
    print("checked_ms", checked * 1e3)
    print("overhead_ms", (checked - plain * (WARMUP + 1)) * 1e3)


if __name__ == "__main__":
    main(int(sys.argv[1]))

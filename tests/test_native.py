"""Native memory and descriptors: what C code takes outside Python's
allocators, which tracemalloc and the debug hooks never see. Each leak is
found with the Python line that called into C and the C frames that
allocated; each has a clean twin."""

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc

import check_leaks
import pytest
from check_leaks import checker
from flavors import needs_trace_refs

pytestmark = needs_trace_refs


def line_of(func, text):
    """`file:line` of the line of `func` holding `text`."""
    lines, first = inspect.getsourcelines(func)
    offset = next(i for i, line in enumerate(lines) if text in line)
    return f"{inspect.getsourcefile(func)}:{first + offset}"


def test_a_malloc_per_call_is_a_leak_that_tracemalloc_cannot_see(leakext):
    def handle():
        leakext.leak_malloc()

    # What the usual tools say: tracemalloc's traced memory does not move.
    tracemalloc.start()
    try:
        handle()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            handle()
        blind = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert blind < 1500

    report = check_leaks.check(handle)
    assert report, str(report)
    leak = report.native_leak
    assert leak is not None
    # glibc's chunk of 1,500 bytes in every run: 1,520 bytes, or 16 more
    # when the chunk it split had too little left to split off.
    assert all(1520 <= grown <= 1536 for grown in leak.per_run), leak.per_run
    assert re.match(r"grew through 500 runs \(\+15[23]\d bytes a run\)", leak.growth), leak.growth
    (stack,) = leak.stacks
    assert stack.site == line_of(handle, "leak_malloc()")
    assert stack.bytes_per_run == 1500 and stack.allocations_per_run == 1
    assert stack.native[0].startswith("leak_malloc at ")
    assert "LEAK: native memory" in str(report)


def test_malloc_then_free_is_clean(leakext):
    report = check_leaks.check(leakext.malloc_then_free)
    assert not report, str(report)
    assert report.native_deltas == [0]


def test_a_leak_inside_a_linked_library_names_its_frames(leakext):
    def compress():
        leakext.start_deflate(False)

    report = check_leaks.check(compress)
    leak = report.native_leak
    assert leak is not None, str(report)
    # zlib's deflate state is about 256 KiB a stream.
    assert sum(leak.per_run) >= 3 * 256 * 1024
    biggest = leak.stacks[0]
    assert biggest.site == line_of(compress, "start_deflate(False)")
    assert any(frame.startswith("deflateInit") for frame in biggest.native), biggest.native
    assert any(frame.startswith("start_deflate at ") for frame in biggest.native)


def test_a_library_cleaned_up_is_clean(leakext):
    report = check_leaks.check(leakext.start_deflate, True)
    assert not report, str(report)


def test_a_c_cache_that_mallocs_once_is_clean(leakext):
    # No warm-up: the first measured run fills the cache, the others do not.
    report = check_leaks.check(leakext.fill_native_cache, warmup=0)
    assert not report, str(report)
    first, *rest = report.native_deltas
    assert 4112 <= first <= 4128 and rest == [0], report.native_deltas
    assert report.native_leak is None


def test_a_descriptor_opened_in_c_gets_its_line(leakext):
    def open_one():
        leakext.open_fd(False)

    report = check_leaks.check(open_one)
    leak = report.descriptor_leak
    assert leak is not None, str(report)
    (opening,) = leak.opened
    assert opening.call == "leakext.open_fd"
    assert opening.site == line_of(open_one, "open_fd(False)")
    assert opening.paths == ["/dev/null"]
    assert f"opened by leakext.open_fd from {opening.site}" in str(report)


def test_a_descriptor_opened_and_closed_in_c_is_clean(leakext):
    report = check_leaks.check(leakext.open_fd, True)
    assert not report, str(report)


def test_a_descriptor_opened_from_python_gets_its_line():
    kept = []

    def open_file():
        kept.append(open(os.devnull))  # noqa: SIM115

    try:
        report = check_leaks.check(open_file)
    finally:
        for file in kept:
            file.close()
    (opening,) = report.descriptor_leak.opened
    assert opening.call == "_io.open"
    assert opening.site == line_of(open_file, "open(os.devnull)")


def test_without_memray_the_leak_is_still_found(leakext, monkeypatch):
    monkeypatch.setitem(sys.modules, "memray", None)
    report = check_leaks.check(leakext.leak_malloc)
    assert report.native_leak is not None, str(report)
    assert report.native_leak.stacks == []
    assert "pip install memray" in report.native_leak.unexplained


def test_watch_sees_native_memory(leakext):
    with check_leaks.watch("block") as watched:
        leakext.leak_malloc()
    assert watched.report.native_leak is not None, str(watched.report)
    # tracemalloc's start and stop move the count a little either way.
    assert watched.report.native_deltas[0] > 1520 - checker.WATCH_NATIVE_SLACK


def test_the_json_report_has_the_stacks(leakext):
    report = json.loads(check_leaks.check(leakext.leak_malloc).to_json())
    (stack,) = report["native_leak"]["stacks"]
    assert stack["bytes_per_run"] == 1500
    # Called straight from the checker: no line of the checked code.
    assert stack["site"] is None


def test_the_cli_fails_on_a_native_leak_and_not_on_its_twin(leakext):
    path = os.path.dirname(leakext.__file__)

    def cli(target):
        return subprocess.run(
            [sys.executable, "-m", "check_leaks", target],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
            timeout=300,
            check=False,
        )

    leaky = cli("leakext:leak_malloc")
    assert leaky.returncode == 1, leaky.stdout + leaky.stderr
    assert "LEAK: native memory" in leaky.stdout
    clean = cli("leakext:malloc_then_free")
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_the_pytest_plugin_fails_the_test_that_leaks_natively(leakext, pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(leakext.__file__))
    pytester.makepyfile(
        test_c="""
        import leakext

        def test_leaks():
            leakext.leak_malloc()

        def test_clean():
            leakext.malloc_then_free()
        """
    )
    result = pytester.runpytest_subprocess("--check-leaks", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*LEAK: native memory*", "*FAILED test_c.py::test_leaks*"])


MONITORED = """
import sys
import leakext
from check_leaks import Monitor

monitor = Monitor("worker", every=20, report_dir=sys.argv[1])
with monitor:
    for i in range(1000):
        leakext.{call}()
        monitor.done()
"""


@pytest.mark.parametrize(("call", "leaks"), [("leak_malloc", True), ("malloc_then_free", False)])
def test_the_monitor_judges_native_memory(leakext, tmp_path, call, leaks):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(MONITORED.format(call=call)))
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, str(script), str(reports)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(leakext.__file__)},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((reports / "report.json").read_text())
    text = (reports / "report.txt").read_text()
    assert bool(report["native_leak"]) == leaks, text
    native = report["totals"]["native_bytes"]
    grown = native[-1] - native[0]
    assert grown >= 1000 * 1500 if leaks else grown < 64 * 1024, native


def test_frames_without_symbols_read_as_one():
    from check_leaks import native

    python = [("work", "/app/work.py", 3)]
    hybrid = [
        ("xmlXPathNodeSetAddUnique", "<unknown>", 0),
        ("<unknown>", "<unknown>", 0),
        ("<unknown>", "<unknown>", 0),
        ("<unknown>", "<unknown>", 0),
        ("xmlXPathErr", "<unknown>", 0),
        ("cfunction_vectorcall_O", "Objects/methodobject.c", 520),
        *python,
    ]
    assert native._native_part(hybrid, python) == [
        "xmlXPathNodeSetAddUnique",
        "<unknown> × 3",
        "xmlXPathErr",
    ]
    # Python's own block, through its raw allocator: not native.
    assert (
        native._native_part([("_PyMem_RawMalloc", "Objects/obmalloc.c", 62), *python], python)
        is None
    )

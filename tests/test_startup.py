"""-X precise_tracebacks and PYTHONPRECISETRACEBACKS: precise mode from the
interpreter's first allocation, not from the line that asks for it."""

import json
import os
import subprocess
import sys

FREELISTS = """
import check_leaks, json
kinds = check_leaks.freelists().items()
print(json.dumps({k: [f.enabled, f.length, f.since_startup] for k, f in kinds}))
"""

# A float made right after tracemalloc starts: traced only if no float
# parked during startup was handed out again.
FIRST_FLOAT = """
import tracemalloc
tracemalloc.start()
value = float("1.25")
print(tracemalloc.get_object_traceback(value) is not None)
"""


def run(code, *options, **env):
    done = subprocess.run(
        [sys.executable, *options, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPRECISETRACEBACKS": "", **env},
    )
    return done.stdout


def test_lists_already_hold_objects_at_startup_without_the_switch():
    states = json.loads(run(FREELISTS))
    assert all(enabled and not since for enabled, _, since in states.values())
    assert any(length for _, length, _ in states.values()), "startup parks objects"
    assert run(FIRST_FLOAT) == "False\n", "a float parked at startup has no traceback"


def test_x_option_keeps_every_list_empty_from_startup():
    states = json.loads(run(FREELISTS, "-X", "precise_tracebacks"))
    assert states == {kind: [False, 0, True] for kind in states}
    assert run(FIRST_FLOAT, "-X", "precise_tracebacks") == "True\n"


def test_environment_variable_does_the_same():
    states = json.loads(run(FREELISTS, PYTHONPRECISETRACEBACKS="1"))
    assert states == {kind: [False, 0, True] for kind in states}
    assert run(FIRST_FLOAT, "-E", PYTHONPRECISETRACEBACKS="1") == "False\n", "-E ignores it"


def test_switching_a_kind_on_ends_since_startup():
    code = "import check_leaks; check_leaks.set_freelist('float', True)\n" + FREELISTS
    states = json.loads(run(code, "-X", "precise_tracebacks"))
    assert states.pop("float")[::2] == [True, False]
    assert all(state == [False, 0, True] for state in states.values())


def test_help_documents_both():
    assert "-X precise_tracebacks:" in run("", "--help-xoptions")
    assert "PYTHONPRECISETRACEBACKS:" in run("", "--help-env")

"""The unpatched interpreter that `cargo xtask build-python --vanilla` builds.

It shows the same misleading facts as the patched interpreter with freelists
on, which proves that the patch changes nothing until a kind is switched off.
The shim refuses to load there, and says why.
"""

import json
import os
import pathlib
import subprocess

import check_leaks
import freelist_scenarios as scenarios
import pytest

VANILLA = os.environ.get("CHECK_LEAKS_VANILLA_PYTHON")
pytestmark = pytest.mark.skipif(
    not VANILLA,
    reason="CHECK_LEAKS_VANILLA_PYTHON is not set (cargo xtask test sets it)",
)


def run_vanilla(*args, **env):
    return subprocess.run(
        [VANILLA, *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def test_vanilla_misleads_exactly_like_freelists_on():
    done = run_vanilla(scenarios.__file__)
    assert done.returncode == 0, done.stderr
    with check_leaks.precise_tracebacks(False):
        patched = scenarios.observe_all()
    assert truths(json.loads(done.stdout)) == truths(patched)


def truths(facts, path=()):
    """Flatten nested facts to {path: truth value}. Byte counts differ by the
    few allocations made around a scenario; what each fact says does not."""
    if not isinstance(facts, dict):
        return {path: bool(facts)}
    return {
        key: truth
        for name, value in facts.items()
        for key, truth in truths(value, (*path, name)).items()
    }


def test_importing_the_shim_on_vanilla_says_which_interpreter_to_use():
    site_packages = pathlib.Path(check_leaks.__file__).parent.parent
    done = run_vanilla("-c", "import check_leaks", PYTHONPATH=str(site_packages))
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: ")
    assert "cargo xtask build-python" in last_line and VANILLA in last_line

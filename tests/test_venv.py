"""`cargo xtask venv`, and each way into a venv of the toolkit interpreter
that the README documents, end to end: a small project is installed the way
its users would, and `pytest --check-leaks` must flag its one leaky test."""

import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest
from flavors import FREE_THREADED, needs_trace_refs

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The toolkit interpreter, not a venv's python (pytest may run in one).
BASE_PYTHON = pathlib.Path(sysconfig.get_config_var("BINDIR")) / "python3"

pytestmark = [
    needs_trace_refs,
    pytest.mark.skipif(shutil.which("cargo") is None, reason="needs cargo"),
]

PROJECT = {
    "pyproject.toml": """
        [build-system]
        requires = ["flit_core==4.2.0"]
        build-backend = "flit_core.buildapi"

        [project]
        name = "demo"
        version = "1.0"
        description = "A project with one leaky function"
        """,
    "demo.py": """
        SEEN = []


        def remember(item):
            SEEN.append([item])


        def double(item):
            return [item, item]
        """,
    "tests/test_demo.py": """
        import demo


        def test_double():
            assert demo.double(1) == [1, 1]


        def test_remember():
            demo.remember(1)
        """,
    "tox.ini": """
        [tox]
        env_list = checked

        [testenv:checked]
        base_python = {env:TOOLKIT_PYTHON}
        set_env = PIP_FIND_LINKS = {env:CHECK_LEAKS_WHEELS}
        deps =
            check-leaks
            {env:PYTEST_PIN}
        commands = pytest --check-leaks -p no:cacheprovider tests
        """,
}


def pinned(name):
    """`name==version` as pinned in tests/requirements.txt (one source)."""
    text = (ROOT / "tests" / "requirements.txt").read_text()
    return re.search(rf"^{name}==\S+", text, re.M).group(0)


def flavor():
    if FREE_THREADED:
        return "ft"
    return "debug" if hasattr(sys, "gettotalrefcount") else "trace"


def xtask_venv(path):
    args = ["--flavor", flavor(), "--python", platform.python_version()]
    return subprocess.run(
        ["cargo", "xtask", "venv", str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def run(*args, cwd=None, env=None):
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "demo"
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture(scope="module")
def wheels():
    """Where the xtask keeps the shim's wheel, beside the toolkit interpreter."""
    return pathlib.Path(sys.base_prefix) / "share/check-leaks/wheels"


def checked_tests(python, project):
    """`pytest --check-leaks` on the project's tests, run by `python`."""
    return subprocess.run(
        [python, "-m", "pytest", "--check-leaks", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def assert_one_leak(out):
    """The verdict on the demo project: its one leaky test, and only it."""
    assert "FAILED tests/test_demo.py::test_remember" in out, out
    assert "test_double" not in out.split("short test summary")[-1], out
    assert "check_leaks: 2 checked, 1 leaking" in out, out


def test_xtask_venv_then_pip_install_editable(tmp_path, project):
    made = xtask_venv(tmp_path / "venv")
    assert made.returncode == 0, made.stderr
    assert "venv ready" in made.stderr and "bin/activate" in made.stderr
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "-e", project, pinned("pytest"))
    shown = run(python, "-m", "pip", "show", "check-leaks")
    assert "Name: check-leaks" in shown.stdout
    result = checked_tests(python, project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_leak(result.stdout)


def test_xtask_venv_refuses_a_non_empty_dir(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    made = xtask_venv(target)
    assert made.returncode == 1
    assert made.stderr.strip().splitlines()[-1] == f"error: {target} exists and is not empty"
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_uv_venv_of_the_toolkit_interpreter(tmp_path, project, wheels):
    uv = pathlib.Path(sysconfig.get_path("scripts")) / "uv"
    venv = tmp_path / "uv-venv"
    run(uv, "venv", "-q", "--python", BASE_PYTHON, venv)
    run(
        uv, "pip", "install", "-q", "--python", venv, "--find-links", wheels,
        "check-leaks", pinned("pytest"), "-e", project,
    )  # fmt: skip
    result = checked_tests(venv / "bin" / "python", project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_leak(result.stdout)


def test_tox_on_the_toolkit_interpreter(tmp_path, project, wheels):
    env = dict(
        os.environ,
        TOOLKIT_PYTHON=str(BASE_PYTHON),
        CHECK_LEAKS_WHEELS=str(wheels),
        PYTEST_PIN=pinned("pytest"),
        TOX_WORK_DIR=str(tmp_path / "tox"),
    )
    tox = pathlib.Path(sysconfig.get_path("scripts")) / "tox"
    result = subprocess.run(
        [tox, "run", "-e", "checked"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # tox fails the env when its command does; the verdict is in its log.
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_leak(result.stdout)

import importlib
import pathlib
import shlex
import subprocess
import sys
import sysconfig

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "as_is: test_checker.py: check once, without also making the cheap pass"
    )


@pytest.fixture(scope="session")
def leakext(tmp_path_factory):
    """tests/leakext/leakext.c, compiled against the running interpreter."""
    source = pathlib.Path(__file__).parent / "leakext" / "leakext.c"
    out = tmp_path_factory.mktemp("leakext")
    target = out / f"leakext{sysconfig.get_config_var('EXT_SUFFIX')}"
    compiler = shlex.split(sysconfig.get_config_var("CC"))
    include = sysconfig.get_path("include")
    subprocess.run(
        [
            *compiler,
            "-shared",
            "-fPIC",
            "-g",
            f"-I{include}",
            str(source),
            "-o",
            str(target),
        ],
        check=True,
    )
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("leakext")
    finally:
        sys.path.remove(str(out))

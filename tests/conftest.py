import importlib
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "leakext"))
from leakext_build import build  # noqa: E402

pytest_plugins = ["pytester"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "as_is: test_checker.py: check once, without also making the cheap pass"
    )


@pytest.fixture(scope="session")
def leakext(tmp_path_factory):
    """tests/leakext/leakext.c, compiled against the running interpreter."""
    out = tmp_path_factory.mktemp("leakext")
    build(out)
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("leakext")
    finally:
        sys.path.remove(str(out))

"""Skip markers for tests that need more than every flavour has."""

import sys
import sysconfig

import pytest

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# The leak checker lists every live object with sys.getobjects().
needs_trace_refs = pytest.mark.skipif(
    not hasattr(sys, "getobjects"),
    reason="the leak checker needs the debug flavour (--with-trace-refs)",
)

# The debug allocator's poisoning and sys.gettotalrefcount().
needs_pydebug = pytest.mark.skipif(
    not hasattr(sys, "gettotalrefcount"), reason="needs a --with-pydebug build"
)

# Only specialised float instructions reuse a dead operand.
needs_specialization = pytest.mark.skipif(
    FREE_THREADED, reason="3.13t runs without the specialising interpreter"
)

# Kinds whose list the free-threaded build compiles out.
_NO_LIST_WITHOUT_GIL = {"future_iter": "3.13t compiles out asyncio's iterator list"}


def kinds(names):
    """`names` as pytest parameters, each skipped where its kind has no list."""
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                FREE_THREADED and name in _NO_LIST_WITHOUT_GIL,
                reason=_NO_LIST_WITHOUT_GIL.get(name, ""),
            ),
        )
        for name in names
    ]

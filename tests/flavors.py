"""Skip markers for tests that need more than every flavour has."""

import sys

import pytest

# The leak checker lists every live object with sys.getobjects().
needs_trace_refs = pytest.mark.skipif(
    not hasattr(sys, "getobjects"),
    reason="the leak checker needs the debug flavour (--with-trace-refs)",
)

# The debug allocator's poisoning and sys.gettotalrefcount().
needs_pydebug = pytest.mark.skipif(
    not hasattr(sys, "gettotalrefcount"), reason="needs a --with-pydebug build"
)

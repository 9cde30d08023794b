"""Time the check of a native leak: memory malloc'd from C per call and
never freed, out of Python's allocators' sight (tests/leakext's
`leak_malloc`, compiled here).

Run by `cargo xtask bench` on the patched interpreter. It prints `name
value` lines: the seconds of the whole check, which finds and confirms the
leak, without memray and with it (which then makes the measured runs again
under memray's native tracking to say where in C it was allocated), and the
seconds of a clean function's check, whose native count is read at every
record.
"""

import pathlib
import sys
import tempfile
import time

import check_leaks

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "leakext"))
from leakext_build import build  # noqa: E402

OUT = tempfile.TemporaryDirectory(prefix="native-bench-")
sys.path.insert(0, str(build(pathlib.Path(OUT.name)).parent))
import leakext  # noqa: E402


def leak():
    leakext.leak_malloc()


def clean():
    leakext.malloc_then_free()


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def check_without_memray():
    memray = sys.modules.get("memray")
    sys.modules["memray"] = None  # an import of it fails
    try:
        return check_leaks.check(leak)
    finally:
        if memray is None:
            del sys.modules["memray"]
        else:
            sys.modules["memray"] = memray


if __name__ == "__main__":
    print("native_found", seconds(lambda: check_without_memray()))
    print("native_explained", seconds(lambda: check_leaks.check(leak)))
    print("native_clean", seconds(lambda: check_leaks.check(clean)))
    OUT.cleanup()

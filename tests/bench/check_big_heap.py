"""Time a leak check on a heap of about a million objects, against the naive
way: diff gc.get_objects() and ask gc.get_referrers() about each new object.

Run by `cargo xtask bench` on the patched interpreter. It prints
`name value` lines: the heap size, then seconds for each way: the check
with the same runs as the naive way (`max_runs=3`), and the whole check,
which goes on running the leak to confirm it grows (see `growth`), with
how many runs that made.
"""

import gc
import sys
import time

import check_leaks

# About a million objects: half a million lists, each holding a fresh float.
HEAP = [[float(i)] for i in range(500_000)]
LEAKED = []


def leak():
    LEAKED.append({"n": len(LEAKED)})


def naive(warmup=2, repeat=3):
    """What people do by hand: it sees only gc-tracked objects, knows no
    allocation site, and scans the whole heap once per new object."""
    for _ in range(warmup):
        leak()
    gc.collect()
    before = {id(obj) for obj in gc.get_objects()}
    for _ in range(repeat):
        leak()
    gc.collect()
    new = [obj for obj in gc.get_objects() if id(obj) not in before]
    return [gc.get_referrers(obj) for obj in new]


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    print("heap_objects", len(sys.getobjects(0)))
    print("check_leaks", seconds(lambda: check_leaks.check(leak, max_runs=3)))
    print("naive", seconds(naive))
    reports = []
    print("confirmed", seconds(lambda: reports.append(check_leaks.check(leak))))
    print("confirm_runs", reports[0].confirm_runs)

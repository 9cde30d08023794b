"""Time the allocation paths that freelists serve.

Run by `cargo xtask bench` on the vanilla and the patched interpreter, in turn,
within one run. It prints one `workload seconds` line per workload, the best
of several repeats. With `--precise` every freelist is switched off first;
that flag needs the patched interpreter. `--loops N` runs each workload N
times a repeat: the optimised flavours need more to take long enough to time.
"""

import argparse
import asyncio
import collections
import contextvars
import time

ITEMS = [1, 2, 3]
TEXT = "1.25"


async def _agen():
    while True:
        yield ITEMS


def _pending_future():
    loop = asyncio.new_event_loop()
    try:
        return loop.create_future()
    finally:
        loop.close()


FUTURE = _pending_future()


def floats(n):
    # Also the eval loop's reuse of a dead float operand.
    x = float(TEXT)
    for _ in range(n):
        x = x * 1.0000001 + 0.5


def tuples(n):
    for _ in range(n):
        tuple(ITEMS)


def lists(n):
    for _ in range(n):
        ITEMS.copy()


def dicts(n):
    for _ in range(n):
        {"a": ITEMS, "b": ITEMS}


def slices(n):
    for _ in range(n):
        ITEMS[1:]


def contexts(n):
    for _ in range(n):
        contextvars.copy_context()


def async_gens(n):
    agen = _agen()
    for _ in range(n):
        try:
            agen.__anext__().send(None)
        except StopIteration:
            pass


def zips(n):
    # The result tuple refilled on every step.
    for _ in zip(range(n), range(n)):
        pass


def future_iters(n):
    for _ in range(n):
        FUTURE.__await__()


def deques(n):
    # A block allocated and freed every 64 steps.
    queue = collections.deque()
    for i in range(n):
        queue.append(i)
        if len(queue) > 100:
            queue.popleft()


WORKLOADS = [
    floats,
    tuples,
    lists,
    dicts,
    slices,
    contexts,
    async_gens,
    zips,
    future_iters,
    deques,
]
LOOPS = 200_000
REPEATS = 5


def best_time(workload, loops):
    workload(loops // 10)  # warm-up: specialise the bytecode, fill the lists
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        workload(loops)
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--precise", action="store_true")
    parser.add_argument("--loops", type=int, default=LOOPS)
    options = parser.parse_args()
    if options.precise:
        import check_leaks

        check_leaks.precise_tracebacks(True)
    for workload in WORKLOADS:
        print(workload.__name__, best_time(workload, options.loops))

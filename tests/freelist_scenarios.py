"""What tracemalloc, the allocator and id() report when CPython recycles objects.

Each scenario runs a small piece of code and returns plain facts about it. The
module uses only the standard library, so the same code runs on the unpatched
interpreter: ``python freelist_scenarios.py`` prints every scenario's facts as
JSON. The tests run each scenario twice in one process, with freelists on and in
precise mode, and compare the facts with that unpatched run.
"""

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import ctypes
import gc
import itertools
import json
import sys
import threading
import tracemalloc

# Inputs that are never constants, so each factory call builds a new object.
_TEXT = "1.25"
_ITEMS = [1, 2, 3]

# How many objects a scenario parks. This is below every capacity, so the whole
# batch fits on the list.
BATCH = 40

# Same-size allocations id_reuse makes before it concludes that a freelist
# holds the dead object's address.
ID_PROBES = 50_000

# Frames per traceback: enough to reach the scenario's own line through the
# factory that built the object.
FRAMES = 8


async def _agen():
    while True:
        yield _ITEMS


def _async_gen_step(agen):
    """Run one step of an async generator. Each yield allocates a wrapped value
    and frees it again once it is unwrapped."""
    try:
        agen.__anext__().send(None)
    except StopIteration:
        pass


_AGEN = _agen()


def _asend():
    # Closing the awaitable frees it without a never-awaited warning; it also
    # finishes its generator, so each one gets a fresh generator.
    awaitable = _agen().asend(None)
    awaitable.close()
    return awaitable


def _pending_future():
    """A C-accelerated asyncio future whose loop is already closed: awaiting it
    only makes a future iterator, which is all the scenarios need."""
    loop = asyncio.new_event_loop()
    try:
        return loop.create_future()
    finally:
        loop.close()


_FUTURE = _pending_future()


# One factory per kind whose objects Python code can hold: each call builds one
# new object through the path that pops that kind's freelist.
FACTORIES = {
    "float": lambda: float(_TEXT),
    "tuple": lambda: tuple(_ITEMS),
    "list": lambda: _ITEMS.copy(),
    "dict": lambda: {"key": _ITEMS},
    "slice": lambda: slice(_ITEMS, None),
    "context": contextvars.copy_context,
    "async_gen_asend": _asend,
    "future_iter": _FUTURE.__await__,
}


# Objects as large as a kind's objects that never go on its freelist: instances
# of slotless subclasses. Each probe allocates that one block and nothing else:
# no argument tuple or kwargs dict of the same size. A tuple subclass allocates
# one spare item, so its 2-tuple is as large as a plain 3-tuple.
class _Tuple(tuple):
    __slots__ = ()


class _List(list):
    __slots__ = ()


class _Dict(dict):
    __slots__ = ()


_PAIR = (1, 2)
SAME_SIZE = {
    "tuple": lambda: _Tuple(_PAIR),
    "list": _List,
    "dict": _Dict,
}


@contextlib.contextmanager
def _gc_paused():
    """A full collection empties the freelists, so none may run mid-scenario."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def fill(kind):
    """Free a batch of objects of `kind`, so its list has them to hand out."""
    if kind == "async_gen_value":
        for _ in range(BATCH):
            _async_gen_step(_AGEN)
        return
    batch = [FACTORIES[kind]() for _ in range(BATCH)]
    del batch


def _bytes_from_line(snapshot, lineno):
    """Bytes of the traces that passed through `lineno` of this file."""
    only = tracemalloc.Filter(True, __file__, lineno=lineno, all_frames=True)
    return sum(trace.size for trace in snapshot.filter_traces([only]).traces)


@_gc_paused()
def untraced_reuse(kind):
    """An object whose list was filled before tracemalloc started.

    Returns whether tracemalloc has a traceback for the new object, and whether
    that traceback passes through the line that created it.
    """
    frame = sys._getframe()
    tracemalloc.stop()
    fill(kind)
    tracemalloc.start(FRAMES)
    try:
        obj, line = FACTORIES[kind](), frame.f_lineno
        traceback = tracemalloc.get_object_traceback(obj)
    finally:
        tracemalloc.stop()
    return _traceback_facts(traceback, line)


def _traceback_facts(traceback, line):
    at_line = traceback is not None and any(
        frame.filename == __file__ and frame.lineno == line for frame in traceback
    )
    return {"has_traceback": traceback is not None, "names_creating_line": at_line}


def in_new_thread(scenario, *args):
    """The facts of `scenario` run in a thread started for it. In the
    free-threaded build each thread has its own freelists."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(scenario, *args).result()


@_gc_paused()
def reuse_after_switch(kind, switch):
    """A running thread fills its list of `kind` before tracing starts. This
    thread starts tracing and calls `switch()`, then the other thread makes an
    object of `kind`.

    Returns the facts of untraced_reuse, about the other thread's object.
    """
    filled, go = threading.Event(), threading.Lock()
    go.acquire()

    def other():
        fill(kind)
        filled.set()
        with go:  # released by a call that allocates nothing to be reused
            frame = sys._getframe()
            obj, line = FACTORIES[kind](), frame.f_lineno
            return tracemalloc.get_object_traceback(obj), line

    tracemalloc.stop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        made = pool.submit(other)
        filled.wait()
        tracemalloc.start(FRAMES)
        try:
            switch()
            go.release()
            traceback, line = made.result()
        finally:
            tracemalloc.stop()
    return _traceback_facts(traceback, line)


@_gc_paused()
def parked_memory(kind):
    """Free a batch of objects while tracing.

    Returns the bytes tracemalloc still attributes to the line that created
    them, and how many more blocks the allocator has in use than before.
    """
    # Warm the path with one object, so lazy caches and the code settle. One,
    # because gc.collect() does not drain every list (asyncio's, for one).
    if kind == "async_gen_value":
        _async_gen_step(_AGEN)
    else:
        FACTORIES[kind]()
    gc.collect()
    frame = sys._getframe()
    tracemalloc.start(FRAMES)
    try:
        before = sys.getallocatedblocks()
        if kind == "async_gen_value":
            fill(kind)  # each step parks the value its yield wrapped
            line = _agen.__code__.co_firstlineno + 2  # the `yield` line
        else:
            batch, line = [FACTORIES[kind]() for _ in range(BATCH)], frame.f_lineno
            del batch
        blocks = sys.getallocatedblocks() - before
        traced = _bytes_from_line(tracemalloc.take_snapshot(), line)
    finally:
        tracemalloc.stop()
    return {"traced_bytes": traced, "extra_blocks": blocks, "batch": BATCH}


@_gc_paused()
def stale_keys_site():
    """A dict keys table freed by one dict and taken by the next.

    Returns the bytes tracemalloc attributes to the line of the first dict,
    which is dead, and to the line of the second, which is alive.
    """
    gc.collect()  # empties the freelists, so the first dict gets a traced table
    frame = sys._getframe()  # before tracing: the frame object is allocated once
    tracemalloc.start(FRAMES)
    try:
        first, first_line = {"key": _ITEMS}, frame.f_lineno
        del first
        second, second_line = {"key": _ITEMS}, frame.f_lineno
        snapshot = tracemalloc.take_snapshot()
        del second
    finally:
        tracemalloc.stop()
    return {
        "dead_line_bytes": _bytes_from_line(snapshot, first_line),
        "live_line_bytes": _bytes_from_line(snapshot, second_line),
    }


def _counter():
    count = 0

    def counter():
        return count

    return counter


def closure_cell_site():
    """A closure cell, made by MAKE_CELL in its function's prologue.

    Returns whether tracemalloc names the line that called the function, or
    the function's own first line, as where the cell was made.
    """
    tracemalloc.start(FRAMES)
    try:
        counter, caller_line = _counter(), sys._getframe().f_lineno
        frame = tracemalloc.get_object_traceback(counter.__closure__[0])[-1]
    finally:
        tracemalloc.stop()
    return {
        "names_caller": (frame.filename, frame.lineno) == (__file__, caller_line),
        "names_function": (frame.filename, frame.lineno)
        == (__file__, _counter.__code__.co_firstlineno),
    }


@_gc_paused()
def id_reuse(kind):
    """Free an object, then make objects of the same size but another type
    until one of them takes the dead object's address, or `ID_PROBES` have
    tried; then make a new object of the first kind.

    A freelist keeps the address for its own kind, so no other request gets it
    and the next object of the kind does. Memory freed to the allocator goes to
    whichever request of that size comes first.
    """
    others = []  # made first: a new list would pop the list freelist
    victim = FACTORIES[kind]()
    address = id(victim)
    del victim
    while len(others) < ID_PROBES and (not others or id(others[-1]) != address):
        others.append(SAME_SIZE[kind]())
    same_kind = FACTORIES[kind]()
    return {
        "allocator_reused_it": id(others[-1]) == address,
        "same_kind_took_it": id(same_kind) == address,
    }


@_gc_paused()
def freed_float_bytes():
    """Read a freed float's value field, as a use-after-free in C would.

    Returns whether the bytes still hold the value, and whether the debug
    allocator filled them with its dead-byte pattern (0xDD).
    """
    neighbours = [float(_TEXT) for _ in range(8)]  # keep the memory mapped
    victim = float(_TEXT)
    value = bytes(ctypes.c_double(victim))
    address = id(victim) + float.__basicsize__ - len(value)
    del victim
    raw = ctypes.string_at(address, len(value))
    del neighbours
    return {"still_readable": raw == value, "poisoned": raw == b"\xdd" * len(raw)}


def _innermost_line(obj):
    traceback = tracemalloc.get_object_traceback(obj)
    return None if traceback is None else (traceback[-1].filename, traceback[-1].lineno)


def _temporary():
    return float(_TEXT)


_HALF = 0.5


@_gc_paused()
def float_operand_site():
    """A float computed from a temporary, ``_temporary() + _HALF``.

    Returns whether the result's traceback starts at the line that computed it,
    or at the line inside ``_temporary()`` that made the operand. The loop lets
    the interpreter specialize the addition first.
    """
    frame = sys._getframe()
    gc.collect()
    tracemalloc.start(FRAMES)
    try:
        for _ in range(8):
            total, line = _temporary() + _HALF, frame.f_lineno
        innermost = _innermost_line(total)
    finally:
        tracemalloc.stop()
    operand_line = _temporary.__code__.co_firstlineno + 1
    return {
        "names_operand_line": innermost == (__file__, operand_line),
        "names_computing_line": innermost == (__file__, line),
    }


# Iterators that hand out a result tuple, each made from fresh inputs.
RESULT_ITERATORS = {
    "zip": lambda: zip(_ITEMS, _ITEMS),
    "enumerate": lambda: enumerate(_ITEMS),
    "dict_items": lambda: iter(dict.fromkeys(_ITEMS).items()),
    "reversed_dict_items": lambda: reversed(dict.fromkeys(_ITEMS).items()),
    "ordered_dict_items": lambda: iter(collections.OrderedDict.fromkeys(_ITEMS).items()),
    "pairwise": lambda: itertools.pairwise(_ITEMS),
    "zip_longest": lambda: itertools.zip_longest(_ITEMS, _ITEMS),
    "product": lambda: itertools.product(_ITEMS),
    "combinations": lambda: itertools.combinations(_ITEMS, 1),
    "combinations_with_replacement": lambda: itertools.combinations_with_replacement(_ITEMS, 1),
    "permutations": lambda: itertools.permutations(_ITEMS, 1),
}


@_gc_paused()
def result_tuple_site(kind):
    """The second tuple an iterator yields, after the consumer dropped the first.

    Returns whether it has a traceback, and whether that starts at the line
    that called ``next()`` rather than at an earlier step or the iterator's
    construction.
    """
    frame = sys._getframe()
    gc.collect()
    tracemalloc.start(FRAMES)
    try:
        iterator = RESULT_ITERATORS[kind]()
        next(iterator)
        item, line = next(iterator), frame.f_lineno
        innermost = _innermost_line(item)
    finally:
        tracemalloc.stop()
    return {
        "has_traceback": innermost is not None,
        "names_next_line": innermost == (__file__, line),
    }


# The spare blocks a deque keeps (MAXFREEBLOCKS), and enough items to fill
# more blocks than that, at 64 items a block.
DEQUE_SPARE_BLOCKS = 16
_DEQUE_ITEMS = range(64 * (DEQUE_SPARE_BLOCKS + 8))
_DEQUE_BLOCK_BYTES = 64 * ctypes.sizeof(ctypes.c_void_p)


@_gc_paused()
def deque_spare_blocks():
    """Fill a deque, empty it, then fill it again from another line.

    Returns how many more allocator blocks the emptied deque holds than it did
    empty before the first fill, and how many blocks tracemalloc attributes to
    the first fill after the second one. A few small objects made on those
    lines, such as the line number, count too.
    """
    frame = sys._getframe()
    deque = collections.deque()
    gc.collect()
    tracemalloc.start(FRAMES)
    try:
        before = sys.getallocatedblocks()
        _, first_line = deque.extend(_DEQUE_ITEMS), frame.f_lineno
        deque.clear()
        held = sys.getallocatedblocks() - before
        deque.extend(_DEQUE_ITEMS)
        only = tracemalloc.Filter(True, __file__, lineno=first_line, all_frames=True)
        traces = tracemalloc.take_snapshot().filter_traces([only]).traces
        stale = sum(trace.size >= _DEQUE_BLOCK_BYTES for trace in traces)
    finally:
        tracemalloc.stop()
    return {"held_blocks": held, "first_fill_blocks": stale}


PARKED_KINDS = [*FACTORIES, "async_gen_value"]
SAME_SIZE_KINDS = list(SAME_SIZE)


def observe_all():
    """Every scenario's facts, keyed by scenario and kind."""
    return {
        "untraced_reuse": {kind: untraced_reuse(kind) for kind in FACTORIES},
        "untraced_reuse_in_new_thread": {
            kind: in_new_thread(untraced_reuse, kind) for kind in FACTORIES
        },
        "reuse_after_switch": {
            kind: reuse_after_switch(kind, switch=lambda: None) for kind in FACTORIES
        },
        "parked_memory": {kind: parked_memory(kind) for kind in PARKED_KINDS},
        "stale_keys_site": stale_keys_site(),
        "id_reuse": {kind: id_reuse(kind) for kind in SAME_SIZE_KINDS},
        "freed_float_bytes": freed_float_bytes(),
        "float_operand_site": float_operand_site(),
        "result_tuple_site": {kind: result_tuple_site(kind) for kind in RESULT_ITERATORS},
        "deque_spare_blocks": deque_spare_blocks(),
        "closure_cell_site": closure_cell_site(),
    }


if __name__ == "__main__":
    json.dump(observe_all(), sys.stdout, indent=1)

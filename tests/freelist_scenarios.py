"""What tracemalloc, the allocator and id() report when CPython recycles objects.

Each scenario runs a small piece of code and returns plain facts about it. The
module uses only the standard library, so the same code runs on the unpatched
interpreter: ``python freelist_scenarios.py`` prints every scenario's facts as
JSON. The tests run each scenario twice in one process, with freelists on and in
precise mode, and compare the facts with that unpatched run.
"""

import contextlib
import contextvars
import ctypes
import gc
import json
import sys
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
    at_line = traceback is not None and any(
        frame.filename == __file__ and frame.lineno == line for frame in traceback
    )
    return {"has_traceback": traceback is not None, "names_creating_line": at_line}


@_gc_paused()
def parked_memory(kind):
    """Free a batch of objects while tracing.

    Returns the bytes tracemalloc still attributes to the line that created
    them, and how many more blocks the allocator has in use than before.
    """
    fill(kind)  # warm the path, so lazy caches and the code itself settle
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


PARKED_KINDS = [*FACTORIES, "async_gen_value"]
SAME_SIZE_KINDS = list(SAME_SIZE)


def observe_all():
    """Every scenario's facts, keyed by scenario and kind."""
    return {
        "untraced_reuse": {kind: untraced_reuse(kind) for kind in FACTORIES},
        "parked_memory": {kind: parked_memory(kind) for kind in PARKED_KINDS},
        "stale_keys_site": stale_keys_site(),
        "id_reuse": {kind: id_reuse(kind) for kind in SAME_SIZE_KINDS},
        "freed_float_bytes": freed_float_bytes(),
    }


if __name__ == "__main__":
    json.dump(observe_all(), sys.stdout, indent=1)

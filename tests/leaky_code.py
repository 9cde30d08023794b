"""Code that leaks, for the checker's tests. Each allocation a test looks for
ends with a `# leak: NAME` comment, so the test can find its line."""

import itertools
import struct
import sys

REGISTRY = []
ITEMS = [1, 2, 3]


def global_cache():
    REGISTRY.append({"payload": "x" * 10})  # leak: global_cache


class Bus:
    listeners = []


def subscribe():
    Bus.listeners.append(lambda event: event)  # leak: listener


class Hooks:
    registered = {}


def register_counter():  # leak: closure_cell
    count = 0

    def counter():
        return count

    Hooks.registered[len(Hooks.registered)] = counter


def register_hook():
    state = [0] * 8  # leak: closure_state

    def hook():
        return state

    Hooks.registered[len(Hooks.registered)] = hook


ERRORS = []


def remember_error():
    try:
        payload = bytearray(64)  # leak: traceback_payload
        raise ValueError(len(payload))
    except ValueError as error:
        ERRORS.append(error)


class Finalized:
    def __del__(self):
        pass


def finalized_cycle():
    node = Finalized()
    node.self = node


RESURRECTED = []


class Phoenix:
    def __del__(self):
        RESURRECTED.append(self)


def resurrecting_cycle():
    bird = Phoenix()  # leak: phoenix
    bird.self = bird


_seen = {}


def warm_cache(key="config"):
    if key not in _seen:
        _seen[key] = [key] * 4


def clean_work():
    """Busy but leak-free: temporaries of every freelist kind, interned and
    cached strings, method and type caches."""
    text = "-".join(str(i) for i in range(50))
    parts = text.split("-")
    total = sum(float(part) * 1.5 for part in parts)
    lengths = {part: len(part) for part in parts}
    window = sorted(lengths.items())[1:10:2]
    warm_cache()
    return total, window, sys.intern(text[:5]), Finalized.__del__, tuple(parts[:3])


_FORMATS = itertools.count(1)


def pack_fresh_format():
    """struct compiles and caches every format it has not seen yet."""
    return struct.pack(f"{next(_FORMATS)}x")


class Member:
    pass


GENERATION = []


def replace_generation():
    """Keeps one generation alive: each run's replaces the last's, whose
    addresses the next run may be given."""
    GENERATION[:] = [Member() for _ in range(20)]  # leak: generation


class Link:
    __slots__ = ("next",)

    def __init__(self):
        self.next = None


def _chain(length):
    head = link = Link()
    for _ in range(length - 1):
        link.next = Link()
        link = link.next
    return head


DEEP_CHAIN = _chain(20_000)


def extend_deep_chain():
    link = DEEP_CHAIN
    while link.next is not None:
        link = link.next
    link.next = Link()  # leak: deep_chain


def line_of(name):
    """The line number of the allocation marked `# leak: name`."""
    with open(__file__) as source:
        for number, line in enumerate(source, 1):
            if line.rstrip().endswith(f"# leak: {name}"):
                return number
    raise LookupError(name)

"""Code whose memory grows in every run for a while, for the tests of the
rule that tells growth that stops from growth that does not. Each bounded
case has an unbounded twin."""

import collections
import datetime
import fnmatch
import functools
import itertools
import re

KEYS = itertools.count(10**6)


@functools.lru_cache(maxsize=128)
def _bounded(key):
    return [key]


@functools.cache
def _unbounded(key):
    return [key]


def fill_lru_cache():
    _bounded(next(KEYS))


def grow_lru_cache():
    _unbounded(next(KEYS))


RECENT = collections.deque(maxlen=100)
EVERYTHING = []


def fill_deque():
    RECENT.append({"seen": next(KEYS)})


def grow_list():
    EVERYTHING.append({"seen": next(KEYS)})


class Buffer:
    """Entries are kept until `every` of them, then written out and dropped."""

    def __init__(self, every):
        self.every = every
        self.entries = []

    def add(self, entry):
        self.entries.append(entry)
        if self.every and len(self.entries) >= self.every:
            self.entries.clear()


FLUSHED = Buffer(every=50)
NEVER_FLUSHED = Buffer(every=None)


def add_to_flushed_buffer():
    FLUSHED.add(("event", next(KEYS)))


def add_to_unflushed_buffer():
    NEVER_FLUSHED.add(("event", next(KEYS)))


class Cache:
    """A third-party least-recently-used cache, pruned as SQLAlchemy's
    LRUCache is: grown to half as much again as its size, then cut back to
    its size. No bound the interpreter knows of, so only running on tells
    it stops; and it is counted at different points of its cycle."""

    def __init__(self, size):
        self.size = size
        self.data = collections.OrderedDict()

    def get(self, key):
        value = self.data[key] = [key]
        if len(self.data) > self.size * 1.5:
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


THIRD_PARTY = Cache(size=60)


def fill_third_party_cache():
    THIRD_PARTY.get(next(KEYS))


LAYERS = []


def slow_down():
    """Each run wraps one more layer and walks every path through them: it
    takes twice as long as the run before."""
    LAYERS.append(("layer", len(LAYERS)))
    sum(1 for _ in itertools.product((0, 1), repeat=len(LAYERS)))


STEADY = []


def grow_steadily():
    STEADY.append(("layer", len(STEADY)))
    sum(1 for _ in itertools.product((0, 1), repeat=8))


RESIZED = []


def _make():
    return {}


def _fill(entries):
    for i in range(20):
        entries[i] = None  # its key table grows here, in another frame


def keep_a_dict_resized_elsewhere():
    entries = _make()
    _fill(entries)
    RESIZED.append(entries)


PAIRS = []


def grow_two_groups_of_one_type():
    PAIRS.append({"first": 1})
    PAIRS.append({"second": 2})


def compile_a_new_pattern():
    re.compile(f"user-{next(KEYS)}-[a-z]+")


def match_a_new_glob():
    fnmatch.fnmatch("x", f"*{next(KEYS)}*.py")


def parse_a_new_format():
    n = next(KEYS)
    datetime.datetime.strptime(f"2020-01-02 {n}", f"%Y-%m-%d {n}")

"""Native core of check_leaks: switch CPython's freelists on and off, and
analyse the live heap."""

import builtins
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import Final, Literal, Self, final

__all__ = [
    "KINDS",
    "NATIVE_SLACK",
    "Checkpoints",
    "FreeList",
    "Heap",
    "PreciseTracebacks",
    "Probe",
    "Snapshots",
    "Stopwatch",
    "Tally",
    "first_free_descriptor",
    "freelists",
    "native_bytes",
    "null_slot",
    "precise_tracebacks",
    "set_freelist",
]

# The freelist kinds, in the header's bit order (`KINDS` at run time; a test
# checks the two agree).
type _Kind = Literal[
    "float",
    "tuple",
    "list",
    "dict",
    "dict_keys",
    "slice",
    "context",
    "async_gen_value",
    "async_gen_asend",
    "object_stack_chunk",
    "float_operand",
    "result_tuple",
    "future_iter",
    "deque_block",
]

KINDS: Final[tuple[_Kind, ...]]

@final
class FreeList:
    """The state of one freelist kind when `freelists()` was called."""

    @property
    def kind(self) -> _Kind: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def length(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def since_startup(self) -> bool:
        """Still off since -X precise_tracebacks switched it off at startup."""
    @property
    def pushes(self) -> int:
        """Entries parked on the list since the interpreter started."""
    @property
    def hits(self) -> int:
        """Allocations served from the list (reuse kinds: reuses) since startup."""
    @property
    def drains(self) -> int:
        """Parked entries freed by gc.collect() or a switch since startup."""

@final
class PreciseTracebacks:
    """Whether precise mode was on before `precise_tracebacks()` switched it."""

    def __bool__(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

def freelists() -> dict[_Kind, FreeList]:
    """The state of every freelist kind, keyed by kind name in `KINDS` order."""

def set_freelist(kind: _Kind | Literal["all"], enabled: bool) -> bool:
    """Switch the freelist `kind` (a name from `KINDS`, or "all") on or off."""

def precise_tracebacks(enabled: bool = True) -> PreciseTracebacks:
    """Switch precise mode on (every freelist off) or off (every freelist on)."""

NATIVE_SLACK: Final[int]
"""Bytes of native memory a run may add without being a sign of a leak."""

def native_bytes() -> int | None:
    """Bytes malloc's heap holds for native code: in use (glibc's
    `mallinfo2()`), less the blocks Python's allocators took from it and the
    shim's own. Only differences between two readings mean anything."""

def first_free_descriptor() -> int:
    """The lowest descriptor number not open: the one the next `open()`
    takes."""

def null_slot(obj: object) -> int | None:
    """The index of the first empty (NULL) slot of a tuple or list, or
    `None`. C code that leaks a tuple it had only begun to fill leaves such
    slots, and reading one crashes."""

@final
class Tally:
    """The cheap first look at a check: counters of the heap between runs,
    with no tracing. Every record reads the debug allocator hooks' block
    count (`PyUnstable_Mem_DebugLiveBlocks`) and the open descriptors; the
    records asked to also walk the trace-refs table once.

    Every leak the full check reports grows in every measured run, so each
    kind leaves a sign here in every one: objects alive from every run so
    far, a changed count on an object older than the runs, more references
    in all after the last run, more live blocks after some run, more open
    descriptors after the last run, more native memory after every run. No
    sign after any run proves the full check would report no leak, however
    many runs were to follow.
    """

    def __init__(self) -> None:
        """Raises RuntimeError where the debug allocator hooks are off."""
    def record(self, walk: bool, /) -> None:
        """Record the counters, and with `walk` the trace-refs table: signs
        need the last two records walked. Every walk runs inside this
        method, so the caller's stack holds the same references at each."""
    def signs(self) -> list[str]:
        """The signs of a possible leak in the runs recorded so far, in
        words: empty if there is none."""
    def native_deltas(self) -> list[int]:
        """For each run, how much the native bytes changed (see
        `native_bytes`); empty where they cannot be read."""
    def __len__(self) -> int: ...

@final
class Stopwatch:
    """Times each run of the checked code against the check's time budget,
    keeping the times in Rust (a float kept in Python would be an object the
    checker leaves behind in each run it measures)."""

    def __new__(cls, multiple: float, allowance: float) -> Stopwatch:
        """A check whose runs may take `multiple` times its first run plus
        `allowance` seconds in all (the checker's own work between runs is
        not counted). `ValueError` for a negative or infinite figure."""
    def run(self, call: Callable[[], object], /) -> None:
        """Call `call()` once and time it; what it raises goes through."""
    def new_phase(self, counted: bool = True) -> None:
        """Compare the runs from here on only with each other (a traced run
        is slower than an untraced one), and count them against the budget
        only if `counted`."""
    def halt(self) -> str | None:
        """Why no more run may be made, in words: the last 3 runs each took
        at least 1.5 times the one before, the last at least 10 ms (code
        that slows down); or the next run, taken to last as long as the
        last, would take the counted runs past the budget. `None` while runs may go on."""
    def __len__(self) -> int:
        """Runs timed so far."""

@final
class Probe:
    """Counters of what a check's measured runs saw grow, sampled while the
    code runs on untraced. Each sample walks the trace-refs table once and
    is kept here, so taking one leaves no Python object behind."""

    def __new__(cls, types: Sequence[type], ids: Sequence[int]) -> Probe:
        """Count the live instances of each of `types`, and the references
        to each object of `ids` (told by serial: 0 once it is freed)."""
    def sample(self, runs: int, extra: Sequence[int], /) -> None:
        """Keep one sample, taken after `runs` runs: the count of each type,
        the reference count of each object, the references in all (mortal
        objects), the open descriptors, the native bytes, then `extra` as
        it is."""
    @property
    def runs(self) -> int:
        """Runs made at the last sample; 0 before any."""
    def series(self) -> tuple[list[int], list[list[int]]]:
        """The runs made at each sample, and each counter's value at each."""

@final
class Snapshots:
    """Records of the live heap between runs of the code under check.

    Everything is kept in Rust, so recording creates no Python object that
    outlives the call, and the checker never measures itself. Run `k` is what
    happened between record `k - 1` and record `k`; each method below returns
    one value per run, in order.

    Objects are told apart by the allocation serial that the patched
    interpreter gives each one (`PyTraceRefs_GetSerial`), never by address:
    an object made in run `k` has a serial above record `k - 1`'s last serial
    and at most record `k`'s, whatever address it was given.
    """

    def __new__(cls, harness: Sequence[str] = ()) -> Snapshots:
        """`harness`: filename prefixes of the code that runs the checked
        code; tracemalloc's blocks are grouped by their traceback cut there."""
    def record(self) -> None:
        """Record the number of live objects, the sum of their reference
        counts (immortal objects left out), `sys.getallocatedblocks()`, the
        open file descriptors, tracemalloc's live blocks per traceback, and
        the reference count of each object alive at the first record whose
        count has risen in every run so far."""

    def __len__(self) -> int:
        """The number of records."""

    def survivors(self) -> list[list[int]]:
        """For each run, the sorted ids of the objects it made that are
        still alive now."""

    def growing_references(self) -> list[tuple[int, list[int]]]:
        """(id, rise per run) of each object alive at the first record whose
        reference count rose in every run, and that is still alive now.
        References to a type that its dead instances' tp_dealloc kept are
        not counted (see `unreleased_type_refs`)."""

    def unreleased_type_refs(self) -> list[tuple[int, list[int]]]:
        """(id, rise per run) of each heap type whose dead instances'
        tp_dealloc kept more of the references they owned to it during the
        runs (a missing `Py_DECREF(Py_TYPE(self))`, bpo-35810). Those
        references keep only the type alive; they are left out of every
        reference count here."""

    def owned_traces(self) -> dict[int, int]:
        """tracemalloc's live blocks that live objects own, by traceback
        key (as `growing_traces` keys them): a dict's key and value tables,
        a list's item array, a set's table, a bytearray's buffer. Such a
        block is its object's memory, wherever it was allocated."""
    def trace_counts(self, keys: Sequence[int]) -> list[int]:
        """tracemalloc's live blocks now with each of `keys` (from
        `growing_traces`); 0 where it traces none."""

    def tracebacks(self, keys: list[int]) -> dict[int, Sequence[tuple[str, int]]]:
        """For each of `keys` (from `growing_traces`), one traceback of a
        live traced block with that key, most recent frame first."""
    def growing_traces(self) -> list[tuple[int, list[int], list[int]]]:
        """(traceback key, blocks per run, bytes per run) of each group of
        tracemalloc's live blocks whose count rose in every run."""

    def new_descriptors(self) -> list[list[tuple[int, str]]]:
        """For each run, the file descriptors it opened that are still open
        at the last record, with what each points at."""

    def object_deltas(self) -> list[int]:
        """For each run, how many more live objects there were after it."""

    def refcount_deltas(self) -> list[int]:
        """For each run, how much the sum of the reference counts of every
        mortal object changed. Read from the objects, so code built for a
        release ABI, whose inlined Py_INCREF skips
        `sys.gettotalrefcount()`, is counted right. References to a type
        that its dead instances' tp_dealloc kept are left out."""

    def block_deltas(self) -> list[int]:
        """For each run, how much `sys.getallocatedblocks()` changed."""

    def descriptor_deltas(self) -> list[int]:
        """For each run, how much the number of open descriptors changed."""

@final
class Heap:
    """Every live object and who references whom.

    Built from one pass over `sys.getobjects(0)`: an edge is a reference
    that the holder's type reports to the gc, as `gc.get_referents()` shows
    them, plus those that the holder has and its traversal leaves out
    (`PyUnstable_Object_VisitUntraversed`: a code object's constants and
    names, a type's name, slots and subclasses, a static type's namespace,
    bases and MRO, a managed dict hidden by inline values; and, from the
    shim, the str keys of a dict, an instance's reference to its heap type,
    and an `lru_cache` entry's key and result). References the interpreter
    holds from C are not edges; `roots()` lists them. The heap keeps the list it took, so every
    object in it stays alive and every id stays valid while the heap lives.
    The lists of other live `Heap`s are left out: they reference everything.

    Methods that take an id raise `KeyError` when no object in the heap has
    it.
    """

    def __new__(cls) -> Heap:
        """Take the heap: every live object, every edge between them, and
        every reference the interpreter holds from C."""

    def roots(self) -> list[tuple[int, str]]:
        """(id, where it is kept, in words) for each reference the
        interpreter and its threads hold from C, outside any object
        (`PyUnstable_VisitInterpreterRoots`): sys.modules, atexit callbacks,
        the codec registries, audit hooks, the locals and stack of running
        frames, and more. Such references count as accounted for."""

    def unaccounted(self) -> list[tuple[int, int]]:
        """(id, count) of every object with references nothing accounts
        for, as `unaccounted_references` counts them."""

    def __len__(self) -> int:
        """The number of objects."""

    def __contains__(self, id: int, /) -> bool:
        """Whether an object in the heap has the id `id`."""

    def object(self, id: int) -> object:
        """The object whose id is `id`."""

    # From here on, `object` in this class is the method above.

    def referrer_ids(self, id: int) -> list[int]:
        """The ids of the objects that reference the object `id`, once per
        reference."""

    def shortest_path(
        self, targets: Sequence[int], roots: Collection[int]
    ) -> list[builtins.object] | None:
        """The shortest chain of references [root, ..., target] from an
        object whose id is in `roots` to whichever object of `targets` is
        closest to one ([target] if it is a root itself), or `None` if no
        root reaches any. A breadth-first search, linear in the heap, with
        no depth limit. `ValueError` if `targets` is empty."""

    def unreachable_path(self, targets: Sequence[int]) -> list[builtins.object]:
        """The shortest chain of references [top, ..., target] to an object
        of `targets` from an object that nothing in the heap references,
        which is likely held from C.

        If every chain loops, this returns the longest one without a loop
        that the breadth-first search reached: its top is one of the objects
        farthest from the targets.
        """

    def unaccounted_references(self, id: int) -> int:
        """How many references to the object `id` no edge of the heap
        explains, counting the heap's own list as one: the signature of a
        refcount leak in C. 0 for an immortal object, never negative.

        The refcount is read now; the edges are as when the heap was taken.
        Any Python reference the caller holds to the object counts as
        unaccounted, so hold only its id.
        """

@final
class Checkpoints:
    """A monitor's checkpoints: the objects made since it began that are
    still alive, counted by type (and, for the watched types, by allocation
    site) at each checkpoint. Only counters are kept, in Rust, so taking one
    leaves no object behind; past 256 checkpoints every other one is
    dropped, so the counters' memory stays bounded.

    An object is new when its allocation serial is above the last one given
    when the monitor began. The time between two checkpoints is an epoch;
    checkpoint 0 is the start."""

    def __new__(cls) -> Checkpoints:
        """Begin: only objects made from now on are counted."""
    def checkpoint(self, units: float, sites: bool = False) -> None:
        """Count the new objects alive, `units` units of work having been
        done in all; with `sites`, count the watched types' by allocation
        site too (the innermost frame of tracemalloc's traceback, looked up
        once per object). Bytes are what the allocator was asked for, read
        from the debug hooks' header: the object's block and the tables a
        dict, list, set or bytearray keeps apart from it."""
    def watch(self, types: Sequence[type]) -> None:
        """Count the instances of `types` by site from the next checkpoint
        made with `sites`."""
    def __len__(self) -> int:
        """Checkpoints kept, the start included."""
    @property
    def numbers(self) -> list[int]:
        """The number of each checkpoint kept."""
    @property
    def units(self) -> list[float]:
        """The units done by each checkpoint kept."""
    @property
    def seconds(self) -> list[float]:
        """Seconds from the start to each checkpoint kept."""
    @property
    def sites_from(self) -> int | None:
        """The index, among those kept, of the first checkpoint that counted
        sites; None before one did."""
    def types(self, rises: int) -> list[tuple[type, list[int], list[int]]]:
        """(type, new objects alive at each checkpoint kept, their bytes) of
        each live type whose count rose at `rises` checkpoints or more."""
    def rising(self, rises: int) -> list[tuple[type, list[int], list[int]]]:
        """As `types`, for the types not watched yet whose count rose at the
        last checkpoint."""
    def sites(self, rises: int) -> list[tuple[type, str, int, int, list[int], list[int]]]:
        """(type, file, line, index, objects, bytes) of each watched type's
        site whose count rose at `rises` checkpoints or more, counted from
        the checkpoint kept at `index` on: the first that counted that type
        by site."""
    def members(self, kind: type, site: tuple[str, int] | None = None) -> list[tuple[int, int]]:
        """(id, epoch) of each live object of exactly `kind` made since the
        start, and at `site` (file, line) if one is given."""
    def totals(self) -> list[tuple[int, int, int, int, int, int]]:
        """For each checkpoint kept: every live object, the new ones, their
        bytes, the open descriptors, the resident set in bytes, and the
        native bytes (see `native_bytes`; 0 where they cannot be read)."""
    def epochs(self, ids: Sequence[int]) -> list[int]:
        """For each of `ids`, the epoch its object was made in: the number
        of the first checkpoint after it was made (one past the last if
        none), or 0 if it is older than the start."""

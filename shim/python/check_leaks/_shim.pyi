"""Native core of check_leaks: switch CPython's freelists on and off, and
analyse the live heap."""

import builtins
from collections.abc import Collection, Iterable
from types import TracebackType
from typing import Final, Self, final

__all__ = [
    "KINDS",
    "FreeList",
    "Heap",
    "PreciseTracebacks",
    "Snapshots",
    "freelists",
    "precise_tracebacks",
    "set_freelist",
]

KINDS: Final[tuple[str, ...]]

@final
class FreeList:
    """The state of one freelist kind when `freelists()` was called."""

    @property
    def kind(self) -> str: ...
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

def freelists() -> dict[str, FreeList]:
    """The state of every freelist kind, keyed by kind name in `KINDS` order."""

def set_freelist(kind: str, enabled: bool) -> bool:
    """Switch the freelist `kind` (a name from `KINDS`, or "all") on or off."""

def precise_tracebacks(enabled: bool = True) -> PreciseTracebacks:
    """Switch precise mode on (every freelist off) or off (every freelist on)."""

@final
class Snapshots:
    """Records of the live heap between runs of the code under check.

    Everything is kept in Rust, so recording creates no Python object that
    outlives the call, and the checker never measures itself. Run `k` is what
    happened between record `k - 1` and record `k`; each method below returns
    one value per run, in order.
    """

    def __new__(cls) -> Snapshots: ...
    def record(self) -> None:
        """Record the id of every live object (from `sys.getobjects(0)`, minus
        this object), then `sys.gettotalrefcount()` and
        `sys.getallocatedblocks()`."""

    def __len__(self) -> int:
        """The number of records."""

    def survivors(self) -> list[list[int]]:
        """For each run, the sorted ids of the objects it created that are
        still alive at the last record.

        An object counts as created when its id is absent from the record
        before the run, so one freed and replaced at the same address during
        the run is missed.
        """

    def object_deltas(self) -> list[int]:
        """For each run, how many more live objects there were after it."""

    def refcount_deltas(self) -> list[int]:
        """For each run, how much `sys.gettotalrefcount()` changed."""

    def block_deltas(self) -> list[int]:
        """For each run, how much `sys.getallocatedblocks()` changed."""

@final
class Heap:
    """Every live object and who references whom.

    Built from one `tp_traverse` pass over `sys.getobjects(0)`: an edge is a
    reference that the holder's type reports to the gc, as
    `gc.get_referents()` shows them. References the gc is not told about
    (from objects it does not track, like code objects, from str keys of
    dicts, from C) are not edges. The heap keeps the list it took, so every
    object in it stays alive and every id stays valid while the heap lives.
    The lists of other live `Heap`s are left out: they reference everything.

    Methods that take an id raise `KeyError` when no object in the heap has
    it.
    """

    def __new__(cls, extra_edges: Iterable[tuple[object, object]] = ()) -> Heap:
        """Take the heap, adding the references in `extra_edges`, given as
        (referrer, referent) pairs, to those that `tp_traverse` reports.

        An executing frame does not report its locals, so callers pass them
        here. `extra_edges` is consumed before the heap is taken, so objects
        the iteration creates are in it; an iterator keeps the pairs
        themselves out of it. Pairs with an object not in the heap are
        ignored.
        """

    def __len__(self) -> int:
        """The number of objects."""

    def __contains__(self, id: int, /) -> bool:
        """Whether an object in the heap has the id `id`."""

    def object(self, id: int) -> object:
        """The object whose id is `id`."""

    # From here on, `object` in this class is the method above.

    def referrers(self, obj: builtins.object) -> list[builtins.object]:
        """The distinct objects that reference `obj` directly."""

    def shortest_path(
        self, id: int, roots: Collection[int], max_depth: int = 100
    ) -> list[builtins.object] | None:
        """The shortest chain of references [root, ..., target] to the object
        `id` from an object whose id is in `roots` ([target] if it is a root
        itself), or `None` if there is none within `max_depth` references."""

    def unreachable_path(self, id: int, max_depth: int = 100) -> list[builtins.object]:
        """The shortest chain of references [top, ..., target] to the object
        `id` from an object that nothing in the heap references, which is
        likely held from C.

        If every chain within `max_depth` references loops, this returns the
        longest one without a loop that a breadth-first search reached: its
        top is one of the objects farthest from the target.
        """

    def unaccounted_references(self, id: int) -> int:
        """How many references to the object `id` no edge of the heap
        explains, counting the heap's own list as one: the signature of a
        refcount leak in C. 0 for an immortal object, never negative.

        The refcount is read now; the edges are as when the heap was taken.
        Any Python reference the caller holds to the object counts as
        unaccounted, so hold only its id.
        """

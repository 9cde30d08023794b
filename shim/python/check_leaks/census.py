"""The census: which live objects have references that nothing accounts for.

Every reference to an object should be explained by an edge from another
object (what tp_traverse reports, plus what the shim adds), or by a root the
interpreter holds from C. What is left is either a leaked reference or a
reference the checker cannot see yet; the census shows both, grouped by type,
so that the second kind can be closed and the first stands out."""

from __future__ import annotations

import dataclasses
import gc

from . import _shim
from .saferepr import safe_repr, type_name


@dataclasses.dataclass(frozen=True)
class CensusGroup:
    """The objects of one type with unaccounted references."""

    type: str
    objects: int
    references: int  # unaccounted, over all of them
    example: str


@dataclasses.dataclass(frozen=True)
class Census:
    objects: int  # live objects in the heap
    groups: list[CensusGroup]  # most objects first

    @property
    def unaccounted(self) -> int:
        """How many objects have references nothing accounts for."""
        return sum(group.objects for group in self.groups)

    def __str__(self) -> str:
        lines = [
            f"{group.type}: {group.objects} objects, {group.references} references, "
            f"e.g. {group.example}"
            for group in self.groups
        ]
        lines.append(
            f"census: {self.objects} objects, {self.unaccounted} with unaccounted references"
        )
        return "\n".join(lines)


def census() -> Census:
    """Take the census of the current interpreter's live objects."""
    gc.collect()
    heap = _shim.Heap()
    found: dict[str, list[tuple[int, int]]] = {}
    for i, count in heap.unaccounted():
        found.setdefault(type_name(heap.object(i)), []).append((i, count))
    groups = [
        CensusGroup(
            type=name,
            objects=len(members),
            references=sum(count for _, count in members),
            example=safe_repr(heap.object(members[0][0])),
        )
        for name, members in found.items()
    ]
    groups.sort(key=lambda group: (-group.objects, group.type))
    return Census(objects=len(heap), groups=groups)

"""Native core of check_leaks: switch CPython's freelists on and off."""

from types import TracebackType
from typing import Final, Self, final

__all__ = [
    "KINDS",
    "FreeList",
    "PreciseTracebacks",
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

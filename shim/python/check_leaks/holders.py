"""Who holds an object, in words: the roots of the heap, and each reference on
the way from a root down to a leaked object."""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import _shim
from ._shim import null_slot
from .saferepr import safe_repr, type_name, type_name_of_class

# Attributes that hold references in common built-in types, checked by identity
# to name an edge.
_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    types.FunctionType: (
        "__defaults__",
        "__kwdefaults__",
        "__globals__",
        "__dict__",
        "__code__",
    ),
    types.MethodType: ("__self__", "__func__"),
    types.TracebackType: ("tb_frame", "tb_next"),
    types.FrameType: ("f_back", "f_code", "f_globals", "f_builtins"),
    BaseException: ("__traceback__", "__context__", "__cause__", "args"),
    property: ("fget", "fset", "fdel"),
    staticmethod: ("__func__",),
    classmethod: ("__func__",),
}


class Roots(dict[int, str]):
    """The objects a chain of holders may stop at, by id, each described in
    words. `named` holds the ids of those whose description is a line of its
    own: what the interpreter keeps from C, and what a harness names."""

    named: set[int]


# Finders of more roots, each giving (object, description) pairs: the pytest
# plugin names the values of the fixtures that outlive a test.
_FINDERS: list[Callable[[], Iterable[tuple[object, str]]]] = []


@contextlib.contextmanager
def named_roots(finder: Callable[[], Iterable[tuple[object, str]]]) -> Iterator[None]:
    """While in the block, every report takes what `finder` gives as roots,
    described in its words."""
    _FINDERS.append(finder)
    try:
        yield
    finally:
        _FINDERS.remove(finder)


def roots(heap: _shim.Heap) -> Roots:
    """Module globals, class attributes, live frames and threads, then what
    the interpreter holds from C: sys.modules, atexit callbacks, the codec
    registries, audit hooks, the locals of running frames and more."""
    found = Roots()
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            found[id(namespace)] = f"module `{name}`"
    for cls in _all_classes():
        for namespace in gc.get_referents(cls.__dict__):  # the dict behind the proxy
            if isinstance(namespace, dict):
                found[id(namespace)] = f"class `{type_name_of_class(cls)}`"
    for frame in _live_frames():
        found[id(frame)] = f"frame of `{frame.f_code.co_qualname}` ({_where(frame)})"
    for thread in threading.enumerate():
        found[id(thread)] = f"thread `{thread.name}`"
    found.named = set()
    named = [(id(obj), words) for finder in _FINDERS for obj, words in finder()]
    for i, description in [*named, *heap.roots()]:
        if i not in found:
            found[i] = description
            found.named.add(i)
    return found


def describe_chain(chain: list[Any], roots: Roots) -> list[tuple[int, str]]:
    """One line per reference along `chain` ([root, ..., target]), each saying
    where the next object sits, with the index in `chain` of the object it
    leads to; first, where the interpreter keeps the root if it holds it
    from C, leading to the root itself (index 0)."""
    lines = []
    if id(chain[0]) in roots.named:
        lines.append((0, roots[id(chain[0])]))
    i = 0
    while i < len(chain) - 1:
        holder, held = chain[i], chain[i + 1]
        # Collapse the plumbing in between: a closure is function -> tuple ->
        # cell -> value, and an instance attribute may go through its __dict__.
        if isinstance(holder, types.FunctionType):
            named = _closure_variable(holder, chain[i + 1 : i + 4])
            if named:
                lines.append((i + 3, named))
                i += 3
                continue
        namespace = _instance_dict(holder)
        if i + 2 < len(chain) and isinstance(namespace, dict) and held is namespace:
            words = _key_edge(namespace, chain[i + 2], f"attribute `{{}}` of {_a(holder)}")
            lines.append((i + 2, words))
            i += 2
            continue
        if i == 0 and id(holder) in roots and id(holder) not in roots.named:
            lines.append((i + 1, _root_edge(holder, held, roots[id(holder)])))
        else:
            lines.append((i + 1, describe_edge(holder, held)))
        i += 1
    return lines


def bounded_cache(chain: list[Any], new: set[int]) -> str | None:
    """The cache with a bound that `chain` ([root, ..., member]) passes
    through, in words, if a new entry of it holds the member: each run's
    entry then evicts an older one once the cache is full, so such growth
    stops by itself. Only where the interpreter tells the bound exactly:
    `lru_cache` with a maxsize, `deque` with a maxlen, re's pattern caches,
    and the weak references to cursors a sqlite3 connection prunes."""
    for holder, entry in zip(chain, chain[1:], strict=False):
        if id(entry) not in new:
            # An old entry may grow without bound: a cached list appended to.
            continue
        words = _bound_of(holder)
        if words:
            return words
    # By type, never isinstance(): that asks a hostile object's __class__.
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and len(chain) >= 2 and issubclass(type(chain[-1]), weakref.ref):
        for holder in chain:
            if issubclass(type(holder), sqlite3.Connection):
                # Modules/_sqlite/connection.c drops the dead ones every 200 cursors.
                return (
                    "the cursor list of a `sqlite3.Connection` (dead ones pruned every 200 cursors)"
                )
    return None


def _bound_of(holder: Any) -> str | None:
    if type(holder) is functools._lru_cache_wrapper:
        info = holder.cache_info()
        if info.maxsize is not None:
            return f"`{_qualified(holder)}` (`lru_cache`, {info.currsize} of {info.maxsize})"
    if issubclass(type(holder), collections.deque):
        # Read through deque itself: a subclass may override anything.
        maxlen = collections.deque.maxlen.__get__(holder)
        if maxlen is not None:
            return f"a `deque` ({collections.deque.__len__(holder)} of its maxlen {maxlen})"
    if type(holder) is dict:
        size = len(holder)
        for module_name, name, bound, what in _MODULE_CACHES:
            module = sys.modules.get(module_name)
            if holder is getattr(module, name, None) and hasattr(module, bound):
                limit = getattr(module, bound)
                return f"`{module_name}.{name}`, {what} ({size} of {limit})"
    return None


# The standard library's own dicts with a bound (module, dict, bound, what
# they hold): each is cleared or trimmed before it outgrows the bound.
_MODULE_CACHES = (
    ("re", "_cache", "_MAXCACHE", "compiled patterns"),
    ("re", "_cache2", "_MAXCACHE2", "compiled patterns"),
    # Cleared when it holds more than _CACHE_MAX_SIZE: a new format a call
    # grows re's caches too, which is why it must be told apart.
    ("_strptime", "_regex_cache", "_CACHE_MAX_SIZE", "compiled formats"),
)


def _qualified(cached: Any) -> str:
    """An lru_cache's function by name: its module is the cached function's,
    which compiled code (mypyc's) may not give, leaving the wrapper's own."""
    name = getattr(cached, "__qualname__", None) or type_name(cached)
    module = getattr(getattr(cached, "__wrapped__", None), "__module__", None)
    return f"{module}.{name}" if isinstance(module, str) and module else name


def describe_edge(holder: Any, held: Any) -> str:
    """Where `held` sits inside `holder`, in words."""
    if isinstance(holder, dict):
        return _key_edge(holder, held, "key {} of a dict")
    if isinstance(holder, (list, tuple)):
        # Only up to an empty slot: reading one crashes (half-built from C).
        filled = null_slot(holder)
        for index in range(len(holder) if filled is None else filled):
            if holder[index] is held:
                return f"item {index} of {_a(holder)}"
    if isinstance(holder, (set, frozenset)):
        return f"member of {_a(holder)}"
    if isinstance(holder, types.CellType):
        return "contents of a closure cell"
    if isinstance(holder, types.FrameType):
        for name, value in _frame_locals(holder).items():
            if value is held:
                return f"local `{name}` of `{holder.f_code.co_qualname}` ({_where(holder)})"
    if isinstance(holder, type):
        for name, value in vars(holder).items():
            if value is held:
                return f"class attribute `{name}` of class `{type_name_of_class(holder)}`"
    for cls, names in _ATTRIBUTES.items():
        if isinstance(holder, cls):
            for name in names:
                if getattr(holder, name, None) is held:
                    return f"`{name}` of {_a(holder)}"
    if isinstance(holder, types.FunctionType) and held is holder.__closure__:
        return f"closure of function `{holder.__qualname__}`"
    attribute = _attribute_name(holder, held)
    if attribute:
        return f"attribute `{attribute}` of {_a(holder)}"
    if type(holder) is functools._lru_cache_wrapper:
        return f"in the cache of `{_qualified(holder)}` (`lru_cache`)"
    return f"referenced by {_a(holder)}"


def _root_edge(root: Any, held: Any, where: str) -> str:
    if isinstance(root, dict) and where.startswith("module "):
        return _key_edge(root, held, "global `{}` of " + where, quote=False)
    if isinstance(root, dict) and where.startswith("class "):
        return _key_edge(root, held, "class attribute `{}` of " + where, quote=False)
    if isinstance(root, threading.Thread):
        name = _attribute_name(root, held)
        return f"attribute `{name}` of {where}" if name else f"referenced by {where}"
    return describe_edge(root, held)


def _key_edge(mapping: dict[Any, Any], held: Any, template: str, quote: bool = True) -> str:
    for key, value in mapping.items():
        if value is held:
            return template.format(safe_repr(key) if quote or not isinstance(key, str) else key)
    for key in mapping:
        if key is held:
            return "a key of a dict"
    return "referenced by a dict"


def _closure_variable(function: types.FunctionType, plumbing: list[Any]) -> str | None:
    closure = function.__closure__
    if len(plumbing) < 3 or closure is None or plumbing[0] is not closure:
        return None
    cell, value = plumbing[1], plumbing[2]
    for name, candidate in zip(function.__code__.co_freevars, closure, strict=True):
        if candidate is cell and cell.cell_contents is value:
            return f"closure variable `{name}` of function `{function.__qualname__}`"
    return None


def _instance_dict(obj: Any) -> object:
    if isinstance(obj, type) or not hasattr(type(obj), "__dict__"):
        return None
    try:
        return object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None


def _attribute_name(obj: Any, held: Any) -> str | None:
    namespace = _instance_dict(obj)
    if isinstance(namespace, dict):
        for name, value in namespace.items():
            if value is held:
                return str(name)
    for cls in type(obj).__mro__:
        slots = vars(cls).get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            try:
                if object.__getattribute__(obj, slot) is held:
                    return str(slot)
            except (AttributeError, TypeError):
                continue
    return None


def _frame_locals(frame: types.FrameType) -> dict[str, Any]:
    try:
        return dict(frame.f_locals)
    except Exception:  # a broken proxy must not break the report
        return {}


def _live_frames() -> Iterator[types.FrameType]:
    for top in sys._current_frames().values():
        frame: types.FrameType | None = top
        while frame is not None:
            yield frame
            frame = frame.f_back


def _all_classes() -> Iterator[type]:
    seen: set[int] = set()
    stack: list[type] = [object]
    while stack:
        cls = stack.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        yield cls
        try:
            stack.extend(type.__subclasses__(cls))
        except TypeError:
            continue


def _where(frame: types.FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _a(obj: Any) -> str:
    """'a `Foo` instance', 'a list': how the text names an anonymous holder."""
    name = type_name(obj)
    if type(obj).__module__ == "builtins":
        return f"an {name}" if name[0] in "aeiou" else f"a {name}"
    return f"a `{name}` instance"

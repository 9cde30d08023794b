"""Short reprs that never fail: a report must survive any object it shows."""

import builtins
import reprlib
from typing import Any

from . import redact
from ._shim import null_slot


class _Repr(reprlib.Repr):
    def repr1(self, x: Any, level: int) -> str:
        # A tuple or list leaked half-built from C crashes whatever reads its
        # empty slot, reprlib's own code included.
        slot = null_slot(x)
        if slot is not None:
            return f"<half-built {type_name(x)} of {len(x)}: item {slot} is NULL>"
        return super().repr1(x, level)

    def repr_instance(self, obj: Any, level: int) -> str:
        # reprlib's own fallback hides why; say what the __repr__ raised.
        try:
            text = builtins.repr(obj)
        except Exception as error:
            return _placeholder(obj, error)
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."


_REPR = _Repr(maxlevel=2, maxdict=4, maxlist=4, maxtuple=4, maxset=4, maxstring=40, maxother=60)


def safe_repr(obj: Any, limit: int = 80) -> str:
    """A repr of at most `limit` characters. A `__repr__` that raises, recurses
    or returns something huge gives a placeholder or a truncated text. Within
    `redact.redacting()`, secret-looking values are left out."""
    try:
        text = _REPR.repr(obj)
    except Exception as error:  # reprlib's container code, on a hostile object
        return _placeholder(obj, error)
    if redact.active():
        text = redact.redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _placeholder(obj: Any, error: Exception) -> str:
    return f"<{type_name(obj)} object at {id(obj):#x}; repr raised {type(error).__name__}>"


def type_name(obj: Any) -> str:
    """The qualified name of `obj`'s type, read from the type itself (so a
    `__class__` property cannot lie or raise)."""
    return type_name_of_class(type(obj))


def type_name_of_class(cls: type) -> str:
    """ "dict" for builtins, "module.Qual.Name" for the rest. Read through
    `type` itself, so a metaclass's `__getattribute__` cannot lie or raise,
    and a type being torn down (its `__module__` gone) still has a name."""
    qualname = type.__dict__["__qualname__"].__get__(cls)
    try:
        module = type.__dict__["__module__"].__get__(cls)
    except Exception:
        module = None
    if not isinstance(module, str):
        module = "?"
    return qualname if module == "builtins" else f"{module}.{qualname}"

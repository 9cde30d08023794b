"""Secrets out of reprs: a leaked request can carry its Authorization
header, its cookies or a password, and a monitor's report files outlive the
process. While `redacting()` is on, `saferepr.safe_repr` passes every repr
through `redact()`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

# Keys whose values are secrets, as a dict key, a header name in an ASGI
# (name, value) pair, a keyword or a query parameter: "authorization",
# "x-api-key", b"cookie", "session_token", "client_secret".
_KEY = r"[\w-]*(?:authorization|cookie|passw(?:or)?d|token|secret|api[_-]?key|session)[\w-]*"
# The value after such a key: a quoted str or bytes, or a bare word.
_VALUE = r"""(?:b?'(?:[^'\\]|\\.)*'?|b?"(?:[^"\\]|\\.)*"?|[^\s,;&)}\]]+)"""
_KEYED = re.compile(
    rf"""(?P<key>(?P<q>b?['"]?){_KEY}(?P=q)?['"]?)(?P<sep>\s*(?:[:=]|,)\s*){_VALUE}""",
    re.IGNORECASE,
)
# A credential in an Authorization header's own form, wherever it appears.
_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Digest|Token)\s+[^\s'\",;)}\]]+", re.IGNORECASE)

REDACTED = "[redacted]"

_on = False


def redact(text: str) -> str:
    """`text` with the value after each secret-looking key, and each
    credential after an auth scheme, replaced by `[redacted]`."""
    text = _KEYED.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    return _SCHEME.sub(lambda m: f"{m['scheme']} {REDACTED}", text)


def active() -> bool:
    return _on


@contextlib.contextmanager
def redacting(enabled: bool = True) -> Iterator[None]:
    """Redact every repr made in the block, if `enabled`."""
    global _on
    before, _on = _on, enabled or _on
    try:
        yield
    finally:
        _on = before

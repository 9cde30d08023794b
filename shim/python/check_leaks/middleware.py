"""WSGI and ASGI middleware that counts requests for a `Monitor`.

    app = check_leaks.middleware.ASGIMonitor(app, Monitor("api", every=100,
                                             report_dir="leaks"))

The monitor starts with the first request, in the process that serves it
(after a server has forked its workers), and takes a checkpoint every
`every` requests. A request is counted once its response is done.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .monitor import Monitor

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Started:
    """Starts the monitor once, on the first request."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._lock = threading.Lock()
        self._started = False

    def ensure(self) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    self.monitor.start()
                    self._started = True


class ASGIMonitor:
    """Counts each HTTP or websocket connection the wrapped ASGI app has
    finished as one unit of `monitor`."""

    def __init__(self, app: ASGIApp, monitor: Monitor) -> None:
        self.app = app
        self.monitor = monitor
        self._started = _Started(monitor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            # Lifespan events pass through: nothing to count.
            await self.app(scope, receive, send)
            return
        self._started.ensure()
        try:
            await self.app(scope, receive, send)
        finally:
            self.monitor.done()


class WSGIMonitor:
    """Counts each request the wrapped WSGI app has finished (its response
    iterable closed) as one unit of `monitor`."""

    def __init__(self, app: WSGIApp, monitor: Monitor) -> None:
        self.app = app
        self.monitor = monitor
        self._started = _Started(monitor)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self._started.ensure()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self.monitor.done()
            raise
        return _Counted(body, self.monitor)


class _Counted:
    """A response iterable that counts its request once the server closes it,
    as PEP 3333 requires every server to."""

    def __init__(self, body: Iterable[bytes], monitor: Monitor) -> None:
        self._body = body
        self._monitor = monitor

    def __iter__(self) -> Any:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._monitor.done()

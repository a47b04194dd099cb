"""The gateway's HTTP connections, bounded: uvicorn's httptools protocol with the limits it lacks.

uvicorn closes a keep-alive connection left idle after a response (``timeout_keep_alive``) and
nothing else: a connection that never sends a byte, a request head sent a byte a minute, a body
that never finishes, all stay open for ever, and enough of them (about a thousand, the usual
limit of open files) stop the gateway accepting anything, ``/healthz`` included. Here:

- ``idle_timeout``: a connection without a request in progress is closed after this long, from
  its opening as well as after each response (uvicorn's keep-alive timer, armed at once);
- ``header_timeout``: a request head (request line and headers) must arrive whole within this
  long of its first byte, and be at most ``MAX_HEADER_BYTES``, else 408 / 431 and close;
- ``body_timeout``: the body must arrive whole within this long of the head, else 408 in the
  provider's error shape and close (a trickling body holds memory and a connection);
- ``max_connections``: at the cap, a new connection closes the connection idle the longest
  (as nginx reuses its idle keep-alive connections), and when every connection has a request
  in progress a new request is answered 503, except ``/healthz``, which is always served.

The protocol is uvicorn's own, subclassed at its parser callbacks; the limits ride on the
uvicorn config (:class:`LimitedConfig`), which ``--workers`` hands to each worker process.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, replace
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from spendgate.gateway.errors import OPENAI, GatewayError, request_timeout, service_overloaded
from spendgate.gateway.routes import ROUTES
from spendgate.settings import Settings

log = logging.getLogger("spendgate.connections")

# Far above any real request head (the gateway's own headers are at most 256 characters each);
# httptools itself sets no limit, so an endless header would grow in memory.
MAX_HEADER_BYTES = 64 * 1024
HEALTH_PATHS = frozenset({b"/healthz", b"/health"})
# Open files besides connections: the database pool, Redis, spool segments, logs, libraries.
RESERVED_FILES = 256
# After a refusal the connection is half-closed, and what the client still sends is read and
# dropped this long before closing it: closing at once with unread data would reset the
# connection, and the client could lose the answer explaining why (nginx's lingering close).
LINGER_S = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 4096


class LimitedConfig(uvicorn.Config):
    """A uvicorn config that serves with :class:`LimitedHttpToolsProtocol` under ``limits``."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        kwargs.update(http=LimitedHttpToolsProtocol, timeout_keep_alive=limits.idle_timeout)
        super().__init__(app, **kwargs)
        self.limits = limits


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection (see the module's docstring for the limits)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ConnectionLimits = getattr(config, "limits", None) or ConnectionLimits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = -1  # bytes of the request head read so far; -1: not reading a head
        self._refused = False  # answered with a refusal: the rest of what arrives is dropped
        self.idle_since = 0.0

    # --- a connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = self.loop.time()
        # uvicorn arms this only after a response; a connection that never sends would stay.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if len(self.connections) > self.limits.max_connections:
            self._close_longest_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(head=True, body=True)
        super().connection_lost(exc)

    def _close_longest_idle(self) -> None:
        idle = [
            other
            for other in self.connections
            if other is not self
            and isinstance(other, LimitedHttpToolsProtocol)
            and (other.cycle is None or other.cycle.response_complete)
        ]
        if idle:
            oldest = min(idle, key=lambda other: other.idle_since)
            oldest.transport.close()

    # --- the request head --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._head_bytes >= 0:  # the head is still incomplete after this data
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._refuse(GatewayError(431, "request_too_large", "request headers are too large"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._cancel(head=True)
        self._head_bytes = -1
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)
        if len(self.connections) <= self.limits.max_connections or self._path() in HEALTH_PATHS:
            super().on_headers_complete()
            return
        # Every connection has a request in progress: refuse this one (not the health check).
        app, self.app = self.app, _overloaded(self._shape())
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._cancel(body=True)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.idle_since = self.loop.time()
        super().on_response_complete()

    # --- deadlines ---------------------------------------------------------------------------
    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._refuse(request_timeout("request headers", self.limits.header_timeout))

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or self.transport.is_closing():
            return
        if not cycle.response_started:
            self._refuse(request_timeout("request body", self.limits.body_timeout))
        else:
            self.transport.close()
        # The application, if still waiting for the body, learns that the client is gone.
        cycle.disconnected = True
        cycle.message_event.set()

    def _refuse(self, error: GatewayError) -> None:
        """Answer ``error`` in the provider's shape on the raw connection, and close it."""
        body = error.body(self._shape())
        head = f"HTTP/1.1 {error.status} {_REASONS.get(error.status, '')}\r\n".encode()
        head += b"content-type: application/json\r\nconnection: close\r\n"
        head += b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        self._refused = True
        self._cancel(head=True, body=True)
        self._unset_keepalive_if_required()
        transport = self.transport
        transport.write(head + body)
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _cancel(self, *, head: bool = False, body: bool = False) -> None:
        if head and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if body and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _path(self) -> bytes:
        try:
            return httptools.parse_url(getattr(self, "url", b"") or b"/").path or b"/"
        except httptools.HttpParserInvalidURLError:
            return b""

    def _shape(self) -> str:
        route = ROUTES.get(self._path().decode("latin-1"))
        return route.family if route is not None else OPENAI


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _overloaded(shape: str) -> Any:
    error = service_overloaded()
    body = error.body(shape)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *error.headers,
    ]

    async def overloaded(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return overloaded


def fit_open_files(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise this process's soft limit of open files as far as ``max_connections`` needs (two
    descriptors each: the client's and, while proxied, the upstream's), up to the hard limit;
    if that is too low, lower ``max_connections`` to fit, so the cap is reached before the
    descriptors run out."""
    needed = 2 * limits.max_connections + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    fitted = max(1, (soft - RESERVED_FILES) // 2)
    log.warning(
        "max_connections lowered from %d to %d to fit the open-files limit of %d (raise it with `ulimit -n`)",
        limits.max_connections,
        fitted,
        soft,
    )
    return replace(limits, max_connections=fitted)


def limits_from(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        idle_timeout=settings.idle_timeout,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=settings.max_connections,
    )

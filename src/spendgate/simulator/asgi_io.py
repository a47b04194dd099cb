"""Small raw-ASGI helpers: read a body, send a whole response, stream events, break a connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
RawHeaders = Iterable[tuple[bytes, bytes]]  # as in an ASGI scope

JSON_CONTENT_TYPE = (b"content-type", b"application/json")
EVENT_STREAM_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
# How long a broken connection may take to be noticed by the server before we stop waiting.
DISCONNECT_WAIT_S = 1.0


class ConnectionBroken(Exception):
    """Raised to break a stream when the server gives no access to the transport: a server then
    closes the connection of an app that failed after starting its response."""


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the common case: the whole body in one message
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_response(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def break_connection(send: Send, receive: Receive) -> None:
    """Close the connection mid-response, without the chunked terminator, as a crashed upstream
    would: the client sees a truncated body ("incomplete chunked read").

    Under uvicorn (httptools or h11) ``send`` is a method of the request cycle, which holds the
    transport; closing it flushes what was already sent, then drops the connection. We then wait
    for the server to notice the disconnect, so it does not log the unfinished response as an
    application error. Elsewhere we raise, which makes any ASGI server drop the connection.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise ConnectionBroken("simulated upstream failure mid-stream")
    transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DISCONNECT_WAIT_S):
            while (await receive())["type"] != "http.disconnect":
                pass

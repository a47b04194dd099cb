"""The few ASGI primitives the gateway needs, kept lean: it is on every request's path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from spendgate.gateway.errors import GatewayError, invalid_request, request_too_large

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


def request_headers(scope: Scope) -> dict[str, str]:
    """Header names are already lower-case ASCII in ASGI. Values are UTF-8: HTTP leaves bytes
    past ASCII opaque, and every client that sends them (curl, the SDKs' httpx) sends UTF-8,
    so ``café`` must read as ``café`` (Latin-1 would make it ``cafÃ©``, and a ``customer:café``
    budget would never match). A value that is not UTF-8 is a 400 naming its header."""
    try:
        return {name.decode("latin-1"): value.decode() for name, value in scope["headers"]}
    except UnicodeDecodeError:
        for name, value in scope["headers"]:
            try:
                value.decode()
            except UnicodeDecodeError:
                raise invalid_request(f"header {name.decode('latin-1')} is not valid UTF-8") from None
        raise


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise request_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise request_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClientGone(Exception):
    """The client disconnected before its request was read."""


async def send_response(send: Send, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: GatewayError, shape: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_response(send, error.status, [*JSON_HEADERS, *error.headers, *extra], error.body(shape))

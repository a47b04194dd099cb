"""How the admin API's routes are declared and what a handler receives."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from spendgate.access.model import Viewer
from spendgate.gateway.admin_access import Caller
from spendgate.gateway.asgi import Receive, read_body
from spendgate.gateway.errors import invalid_request

MAX_ADMIN_BODY = 64 * 1024
_NAME = "(?P<name>[^/]+)"


def query_parameters(
    path: str, query_string: bytes, allowed: tuple[str, ...] = (), repeated: tuple[str, ...] = ()
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The route's query parameters: those given at most once, and the ``repeated`` ones (any
    number of times, in order); anything else is a 400."""
    try:
        pairs = parse_qsl(query_string.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise invalid_request("the query string is not UTF-8") from exc
    query: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise invalid_request(f"unknown query parameter {name[:64]!r} for {path} (known: {known})")
        if name in repeated:
            lists.setdefault(name, []).append(value)
            continue
        if name in query:
            raise invalid_request(f"query parameter {name!r} is given more than once")
        query[name] = value
    return query, lists


@dataclass
class AdminRequest:
    """One admin API request, as a route handler sees it."""

    caller: Caller
    path: str
    name: str  # the NAME of a /admin/…/NAME/… path ("" when the route has none)
    query: dict[str, str]
    receive: Receive
    headers: dict[str, str]
    lists: dict[str, list[str]] = field(default_factory=dict)  # the repeatable query parameters
    _body: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def viewer(self) -> Viewer:
        return self.caller.viewer

    async def json(self) -> dict[str, Any]:
        if self._body is None:
            raw = await read_body(self.receive, self.headers, MAX_ADMIN_BODY)
            try:
                body = orjson.loads(raw or b"{}")
            except orjson.JSONDecodeError as exc:
                raise invalid_request(f"request body is not valid JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise invalid_request("request body must be a JSON object")
            self._body = body
        return self._body


Handler = Callable[[AdminRequest], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    query: tuple[str, ...] = ()  # the query parameters it takes
    changes_config: bool = False  # the gateway reloads keys, projects and budgets after it
    repeated: tuple[str, ...] = ()  # those of them that may be given more than once


def route(
    method: str,
    path: str,
    handler: Handler,
    query: tuple[str, ...] = (),
    *,
    changes_config: bool = False,
    repeated: tuple[str, ...] = (),
) -> Route:
    return Route(method, re.compile(f"^{path.replace('{name}', _NAME)}$"), handler, query, changes_config, repeated)

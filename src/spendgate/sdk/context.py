"""The attribution context: dimensions set once at a request boundary, read by every client call
made inside it (``contextvars``: per thread, per asyncio task, copied into tasks and into threads
started with a copied context).

Only the standard library and ``spendgate.attribution.rules`` (itself standard library only) are
imported: the SDK runs in applications that do not install the gateway's dependencies.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from spendgate.attribution.rules import (
    CUSTOMER_HEADER,
    FEATURE_HEADER,
    MAX_HEADER_VALUE,
    PROJECT_HEADER,
    TAGS_HEADER,
    TEAM_HEADER,
    TRACE_HEADER,
    parse_tags,
)

F = TypeVar("F", bound=Callable[..., Any])

# The dimensions, in the order they are given, and the header each rides in.
DIMENSION_HEADERS = MappingProxyType(
    {
        "project": PROJECT_HEADER,
        "team": TEAM_HEADER,
        "feature": FEATURE_HEADER,
        "customer": CUSTOMER_HEADER,
        "trace_id": TRACE_HEADER,
    }
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})
# The active dimensions: immutable mappings, so a copied context can never change its parent's.
_CURRENT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("spendgate_attribution", default=_EMPTY)


def _checked_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"spendgate attribution: {name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if len(value) > MAX_HEADER_VALUE:
        raise ValueError(f"spendgate attribution: {name} is longer than {MAX_HEADER_VALUE} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError(f"spendgate attribution: {name} holds a control character")
    return value


def _tags_header(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())


def _checked_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    checked = {_checked_value("tag name", key): _checked_value(f"tag {key!r}", value) for key, value in tags.items()}
    # The gateway's own parser is the judge: what it would refuse is refused here, at once.
    parse_tags(_tags_header(checked))
    return checked


class attribution:  # lower-case: used like a function: ``with attribution(...)``, ``@attribution(...)``
    """Dimensions for every instrumented ``openai`` / ``anthropic`` call made inside it.

    ``with attribution(feature="refunds", customer="acme", tags={"agent": "support-bot"}):`` or as
    a decorator of a function or coroutine function (each call runs inside it). Nested scopes
    add to the outer one: an inner value replaces the outer one, tags are merged (inner wins).
    Values are checked at once against the gateway's rules (256 characters, tag keys and values
    as ``x-spendgate-tags`` takes them), so a bad one fails here, not as a 400 later."""

    __slots__ = ("_tokens", "_values")

    def __init__(
        self,
        *,
        feature: str | None = None,
        customer: str | None = None,
        trace_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        project: str | None = None,
        team: str | None = None,
    ) -> None:
        given = {"project": project, "team": team, "feature": feature, "customer": customer, "trace_id": trace_id}
        values: dict[str, Any] = {name: _checked_value(name, v) for name, v in given.items() if v is not None}
        if tags:
            values["tags"] = _checked_tags(tags)
        self._values = values
        self._tokens: list[contextvars.Token[Mapping[str, Any]]] = []

    def __enter__(self) -> attribution:
        outer = _CURRENT.get()
        merged = {**outer, **self._values}
        if "tags" in outer and "tags" in self._values:
            merged["tags"] = {**outer["tags"], **self._values["tags"]}
            parse_tags(_tags_header(merged["tags"]))  # still within the gateway's bounds together
        self._tokens.append(_CURRENT.set(MappingProxyType(merged)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT.reset(self._tokens.pop())

    def __call__(self, function: F) -> F:
        values = self._values

        def scope() -> attribution:
            # A new scope per call: concurrent calls of the decorated function never share one.
            fresh = attribution.__new__(attribution)
            fresh._values, fresh._tokens = values, []
            return fresh

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with scope():
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with scope():
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]


def current() -> dict[str, Any]:
    """The active dimensions (``{"feature": …, "tags": {…}}``), empty outside any scope."""
    values = dict(_CURRENT.get())
    if "tags" in values:
        values["tags"] = dict(values["tags"])
    return values


def headers() -> dict[str, str]:
    """The active dimensions as the gateway's ``x-spendgate-*`` headers, for any HTTP client."""
    values = _CURRENT.get()
    out = {header: values[name] for name, header in DIMENSION_HEADERS.items() if name in values}
    if values.get("tags"):
        out[TAGS_HEADER] = _tags_header(values["tags"])
    return out


def bind(function: F) -> F:
    """``function`` bound to a copy of the current context: for threads and executors, which do
    not copy it themselves (``pool.submit(bind(work))``, ``Thread(target=bind(work))``)."""
    context = contextvars.copy_context()

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        return context.copy().run(function, *args, **kwargs)

    return run  # type: ignore[return-value]

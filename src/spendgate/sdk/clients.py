"""Instrumenting ``openai`` and ``anthropic`` clients, and pointing them at the gateway.

The headers are added by an httpx request event hook on the client's own HTTP client, not by
``default_headers``: the hook runs at send time, inside the calling thread or task, so it reads
the attribution context of that very call (a client made once at start-up and shared by every
request and task still tags each call with its own context), it runs again for each retry, and
``client.with_options(...)`` / ``client.copy()`` keep it (they share the HTTP client). Headers the
call sets itself (``extra_headers``) are left as they are.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, TypeVar

from spendgate.sdk.context import headers

C = TypeVar("C")

DEFAULT_URL = "http://127.0.0.1:4100"
URL_ENV = "SPENDGATE_URL"
KEY_ENV = "SPENDGATE_API_KEY"


def _add_headers(request: Any) -> None:
    for name, value in headers().items():
        if name not in request.headers:
            if not value.isascii():
                # The gateway reads header values as UTF-8 (customer "café" stays "café"); httpx
                # settles on ASCII once it has read the other headers, so say it.
                request.headers.encoding = "utf-8"
            request.headers[name] = value


def _sync_hook(request: Any) -> None:
    _add_headers(request)


async def _async_hook(request: Any) -> None:
    _add_headers(request)


def instrument_http_client(http_client: Any) -> Any:
    """Add the attribution hook to an ``httpx.Client`` or ``httpx.AsyncClient`` (once).

    Duck-typed: the SDKs' HTTP clients are httpx's, or a fork of it with the same interface
    (newer SDK releases ship ``httpx2``), so no particular package is imported."""
    hooks = getattr(http_client, "event_hooks", None)
    send = getattr(http_client, "send", None)
    if not isinstance(hooks, dict) or "request" not in hooks or send is None:
        raise TypeError(f"expected an httpx.Client or httpx.AsyncClient, got {type(http_client).__name__}")
    hook: Any = _async_hook if inspect.iscoroutinefunction(send) else _sync_hook
    if hook not in hooks["request"]:
        hooks["request"] = [*hooks["request"], hook]
        http_client.event_hooks = hooks
    return http_client


def instrument(client: C) -> C:
    """Make every call of ``client`` (``openai.OpenAI``/``AsyncOpenAI``/``AzureOpenAI``,
    ``anthropic.Anthropic``/``AsyncAnthropic``) carry the active attribution. Idempotent;
    returns the client."""
    http_client = getattr(client, "_client", None)
    if http_client is None:
        raise TypeError(
            f"spendgate.sdk.instrument: {type(client).__name__} is not an openai or anthropic client "
            "(for other HTTP clients, send spendgate.sdk.headers())"
        )
    instrument_http_client(http_client)
    return client


def gateway_url(url: str | None = None) -> str:
    """The gateway's address: ``url``, else ``SPENDGATE_URL``, else http://127.0.0.1:4100."""
    return (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def _gateway_key(key: str | None) -> str:
    key = key or os.environ.get(KEY_ENV)
    if not key:
        raise ValueError(f"no gateway key: pass key= or set {KEY_ENV} (an sg-… key from `spendgate keys create`)")
    return key


def openai_client(*, url: str | None = None, key: str | None = None, **kwargs: Any) -> Any:
    """An instrumented ``openai.OpenAI`` pointed at the gateway (other arguments: the SDK's)."""
    import openai

    return instrument(openai.OpenAI(base_url=gateway_url(url) + "/v1", api_key=_gateway_key(key), **kwargs))


def async_openai_client(*, url: str | None = None, key: str | None = None, **kwargs: Any) -> Any:
    import openai

    return instrument(openai.AsyncOpenAI(base_url=gateway_url(url) + "/v1", api_key=_gateway_key(key), **kwargs))


def anthropic_client(*, url: str | None = None, key: str | None = None, **kwargs: Any) -> Any:
    """An instrumented ``anthropic.Anthropic`` pointed at the gateway."""
    import anthropic

    return instrument(anthropic.Anthropic(base_url=gateway_url(url), api_key=_gateway_key(key), **kwargs))


def async_anthropic_client(*, url: str | None = None, key: str | None = None, **kwargs: Any) -> Any:
    import anthropic

    return instrument(anthropic.AsyncAnthropic(base_url=gateway_url(url), api_key=_gateway_key(key), **kwargs))

"""Reading a provider's paginated admin report over HTTP: retries, pagination, exact JSON.

Both providers page their reports the same way: an object with ``data``, ``has_more`` and
``next_page``, the cursor passed back as ``page``. Neither installed SDK does this fully for the
endpoints spendgate reads (see ``spendgate.providers.admin``), so this is plain aiohttp, the
HTTP client spendgate already depends on.

- 429 and 5xx (and 529, Anthropic's "overloaded") are retried with exponential backoff, or after
  the ``retry-after`` / ``retry-after-ms`` the provider asks for, capped at ``max_delay``;
  connection errors and timeouts are retried too. At most ``max_attempts`` tries per page.
- 401/403 raise ``AdminKeyError`` naming the environment variable that holds the key.
- A body is read up to ``max_body_bytes`` and parsed with ``parse_float=Decimal``, so a cost
  such as ``0.1234567890123456789`` keeps every digit it was written with; NaN and Infinity
  are refused.
- Pagination is bounded: at most ``max_pages`` pages, and a cursor seen twice is an error
  rather than a loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from spendgate.providers.admin.model import AdminApiError, AdminKeyError, AdminResponseError

__all__ = ("AdminHttp", "RetryPolicy", "Sleep", "retry_delay")

Sleep = Callable[[float], Awaitable[Any]]
Query = Sequence[tuple[str, str]]

RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_CURSOR_CHARS = 4096
MAX_ERROR_MESSAGE_CHARS = 200


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0  # seconds before the 2nd try; doubled each time after
    max_delay: float = 60.0  # the longest wait, a provider's retry-after included

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


def retry_delay(policy: RetryPolicy, attempt: int, headers: Any = None) -> float:
    """Seconds to wait before try ``attempt + 1``: what the provider asked for, else backoff."""
    asked = _retry_after(headers) if headers is not None else None
    delay = asked if asked is not None else policy.base_delay * 2 ** (attempt - 1)
    return min(max(delay, 0.0), policy.max_delay)


def _retry_after(headers: Any) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    text = headers.get("retry-after")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:  # an HTTP date: how long from the Date the provider sent (no clock of ours is read)
        until = parsedate_to_datetime(text)
        sent = parsedate_to_datetime(headers.get("date") or "")
        return (until - sent).total_seconds()
    except (TypeError, ValueError, IndexError):
        return None


class AdminHttp:
    """GETs report pages from one provider's admin API.

    ``key_variable`` is the environment variable the key came from, named in errors (the key
    itself never is). ``session`` may be given (then it is not closed here); otherwise one is
    opened for each report. ``sleep`` is injectable so tests need not wait.
    """

    def __init__(
        self,
        *,
        provider_label: str,
        key_variable: str,
        base_url: str,
        headers: dict[str, str],
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
        max_pages: int = 1000,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.provider_label = provider_label
        self.key_variable = key_variable
        self.base_url = base_url.rstrip("/")
        self._headers = {"accept": "application/json", "user-agent": "spendgate", **headers}
        self._session = session
        self._sleep = sleep
        self._retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_pages = max_pages
        self._max_body_bytes = max_body_bytes

    async def pages(self, path: str, query: Query) -> AsyncIterator[dict[str, Any]]:
        """Every page of the report at ``path``, following ``next_page`` while ``has_more``."""
        async with AsyncExitStack() as stack:
            session = self._session or await stack.enter_async_context(aiohttp.ClientSession())
            async with aclosing(self._pages(session, path, query)) as pages:
                async for page in pages:
                    yield page

    async def _pages(self, session: aiohttp.ClientSession, path: str, query: Query) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(self._max_pages):
            params = [*query, ("page", cursor)] if cursor else list(query)
            page = await self._get(session, path, params)
            yield page
            if page.get("has_more") is not True:
                return
            cursor = page.get("next_page")
            if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
                raise AdminResponseError(f"{self.provider_label} said has_more but gave no usable next_page ({path})")
            if cursor in seen:
                raise AdminResponseError(
                    f"{self.provider_label} gave the same next_page twice: pagination loops ({path})"
                )
            seen.add(cursor)
        raise AdminResponseError(f"{self.provider_label} had more than {self._max_pages} pages for {path}: stopped")

    async def _get(self, session: aiohttp.ClientSession, path: str, params: Query) -> dict[str, Any]:
        url = self.base_url + path
        for attempt in range(1, self._retry.max_attempts + 1):
            last_try = attempt == self._retry.max_attempts
            try:
                async with session.get(url, params=list(params), headers=self._headers, timeout=self._timeout) as resp:
                    status = resp.status
                    body = await _read_bounded(resp, self._max_body_bytes)
                    if status == 200:
                        return self._page(body, path)
                    if status in (401, 403):
                        raise AdminKeyError(self._key_refused(status, body))
                    if status not in RETRIED_STATUSES:
                        raise AdminApiError(
                            f"{self.provider_label} answered HTTP {status} to GET {path}: {_error_message(body)}"
                        )
                    if last_try:
                        raise AdminApiError(
                            f"{self.provider_label} still answered HTTP {status} to GET {path} after "
                            f"{attempt} attempts: {_error_message(body)}"
                        )
                    delay = retry_delay(self._retry, attempt, resp.headers)
            except (aiohttp.ClientError, TimeoutError) as error:
                if last_try:
                    raise AdminApiError(
                        f"cannot read {url} after {attempt} attempts: {type(error).__name__} {error}"
                    ) from error
                delay = retry_delay(self._retry, attempt)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _page(self, body: bytes, path: str) -> dict[str, Any]:
        try:
            page = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as error:
            raise AdminResponseError(f"{self.provider_label} answered GET {path} with invalid JSON") from error
        if not isinstance(page, dict):
            raise AdminResponseError(f"{self.provider_label} answered GET {path} with JSON that is not an object")
        return page

    def _key_refused(self, status: int, body: bytes) -> str:
        return (
            f"{self.provider_label} refused the admin key (HTTP {status}: {_error_message(body)}). "
            f"Set {self.key_variable} to an admin key of the organization (not a project or API key)."
        )


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise AdminResponseError(f"the answer to GET {resp.url.path} is larger than {limit} bytes: refused")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _error_message(body: bytes) -> str:
    """The provider's error message, shortened and printable (it is shown, never obeyed)."""
    message: Any = None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message:
        message = "no error message"
    printable = "".join(ch if ch.isprintable() else " " for ch in message)
    return printable[:MAX_ERROR_MESSAGE_CHARS]

"""The usage event: one row of the append-only ledger, whatever endpoint or provider."""

from __future__ import annotations

import itertools
import os
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_INCOMPLETE = "incomplete"


def new_event_id(now: datetime) -> str:
    """Time-ordered id (48-bit milliseconds + 80 random bits, hex) so inserts stay local in
    the index and ids sort like timestamps."""
    millis = int(now.timestamp() * 1000)
    return f"{millis:012x}{os.urandom(10).hex()}"


class EventIds:
    """``new_event_id`` without a syscall per id, for the request path: the same 32 hex
    characters, 48-bit milliseconds first, then 48 random bits drawn once per process (again
    in a forked child) and a 32-bit counter. Ids of one process never repeat (the counter
    would have to wrap within one millisecond); two processes or two starts share ids only if
    their random parts match, which is as unlikely as two ``new_event_id`` ids matching."""

    __slots__ = ("__weakref__", "_counter", "_prefix")

    def __init__(self) -> None:
        self._reseed()
        ids = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reseed_alive(ids))

    def _reseed(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self, now: datetime) -> str:
        millis = int(now.timestamp() * 1000)
        # next() on itertools.count is atomic under the GIL: safe from any thread.
        return f"{millis:012x}{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"


def _reseed_alive(ids: weakref.ref[EventIds]) -> None:
    alive = ids()
    if alive is not None:
        alive._reseed()


def format_ts(ts: datetime) -> str:
    """UTC, fixed width, so string order is time order in every backend."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class UsageEvent:
    id: str
    ts: datetime
    provider: str
    model: str
    endpoint: str
    stream: bool
    status: str
    http_status: int
    project: str | None = None
    team: str | None = None
    cost_center: str | None = None
    feature: str | None = None
    environment: str | None = None
    customer: str | None = None
    key: str | None = None
    trace_id: str | None = None
    tags: dict[str, str] | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None  # None: no known price (flagged, never a silent $0)
    rates: dict[str, str] | None = None  # unit prices charged, USD per million tokens
    price_source: str | None = None
    estimated: bool = False
    latency_ms: float = 0.0
    upstream_request_id: str | None = None
    # Events from outside the proxy (ingest/): the client's own id for the record (for OTLP,
    # "TRACE-SPAN"), and whether cost_usd is the client's figure rather than spendgate's price.
    external_id: str | None = None
    client_reported: bool = False
    # W3C trace context: for a proxied request, "TRACE-PARENT" from its traceparent header (so a
    # span exported later for the same call is linked to it, not counted twice); for an OTLP
    # event, "TRACE-SPAN" of its span.
    otel_span: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The tier the request was served and priced at ("standard", "flex", "priority", "batch"…),
    # as the provider reported it, else as the request asked; None when neither said.
    service_tier: str | None = None
    # Which door the spend came in by: proxy, ingest, otlp, batch, manual, provider_import.
    source: str = "proxy"

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None

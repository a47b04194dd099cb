"""The usage event: one row of the append-only ledger, whatever endpoint or provider."""

from __future__ import annotations

import os
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None

"""A batch's results, one JSON line per request, as ledger events (pure).

OpenAI's output file: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}``, the body being what the endpoint answers (a chat completion…). Anthropic's results:
``{"custom_id", "result": {"type": "succeeded", "message": {…}}}`` (or ``errored``, ``canceled``,
``expired``). Each succeeded result becomes one event, priced by the one choke point
(``gateway.accounting.settle``) at the ``batch`` service tier (genai-prices' batch prices,
half the standard ones today), dated at the batch's creation and attributed to its creator.

Idempotent: an event's id is derived from (provider, batch, custom_id), so the same results
fetched twice, or by two gateways, are one event each (the ledger ignores an id it has).
Results that ran nothing billable (errored, canceled, expired) are not recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from spendgate.ledger.events import UsageEvent
from spendgate.pricing import PriceBook
from spendgate.usage import Usage, anthropic_response_usage, openai_response_usage

BATCH_TIER = "batch"
SOURCE = "batch"
MAX_CUSTOM_ID = 512  # OpenAI allows up to 512 characters; longer is no result we can name


@dataclass(frozen=True, slots=True)
class BatchResult:
    custom_id: str
    http_status: int
    usage: Usage | None
    model: str | None
    request_id: str | None = None


def _custom_id(line: dict[str, Any]) -> str | None:
    value = line.get("custom_id")
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CUSTOM_ID else None


def openai_result(line: Any) -> BatchResult | None:
    """One line of an OpenAI batch output file; None for an error line or one we cannot read."""
    if not isinstance(line, dict) or line.get("error"):
        return None
    custom_id, response = _custom_id(line), line.get("response")
    if custom_id is None or not isinstance(response, dict):
        return None
    status = response.get("status_code")
    if not isinstance(status, int) or isinstance(status, bool) or status >= 400:
        return None
    usage, model = openai_response_usage(response.get("body"))
    request_id = response.get("request_id")
    return BatchResult(custom_id, status, usage, model, request_id if isinstance(request_id, str) else None)


def anthropic_result(line: Any) -> BatchResult | None:
    """One line of Anthropic batch results; None unless it succeeded."""
    if not isinstance(line, dict):
        return None
    custom_id, result = _custom_id(line), line.get("result")
    if custom_id is None or not isinstance(result, dict) or result.get("type") != "succeeded":
        return None
    usage, model = anthropic_response_usage(result.get("message"))
    return BatchResult(custom_id, 200, usage, model)


def batch_event_id(provider: str, batch_id: str, custom_id: str, created_at: datetime) -> str:
    """The event id of one result: time-ordered like every event id (the batch's creation in
    milliseconds), then 80 bits of a hash of what names the result, so it is the same id
    whenever and wherever the results are fetched."""
    digest = hashlib.sha256(f"{provider}\0{batch_id}\0{custom_id}".encode()).hexdigest()[:20]
    return f"{int(created_at.timestamp() * 1000):012x}{digest}"


def result_event(
    result: BatchResult,
    *,
    provider: str,
    batch_id: str,
    created_at: datetime,
    endpoint: str,
    owner: Any,
    prices: PriceBook,
) -> UsageEvent:
    """The event of one result, settled like a proxied request (bounds, flags, price)."""
    from spendgate.gateway.accounting import Outcome, RequestContext, settle  # the one choke point

    usage = result.usage
    if usage is not None:
        usage = dataclasses.replace(usage, service_tier=BATCH_TIER)
    ctx = RequestContext(
        request_id=batch_event_id(provider, batch_id, result.custom_id, created_at),
        started=created_at,
        started_perf=time.perf_counter(),
        endpoint=endpoint,
        provider=provider,
        model=result.model or "unknown",
        stream=False,
        attribution=owner,
        body={"service_tier": BATCH_TIER},
    )
    outcome = Outcome(
        http_status=result.http_status,
        usage=usage,
        reported_model=result.model,
        upstream_request_id=result.request_id or batch_id,
    )
    return dataclasses.replace(settle(ctx, outcome, prices), latency_ms=0.0, source=SOURCE)


class JSONLines:
    """JSON lines from a streamed body, whatever the chunks: each complete line parsed as it
    arrives; a line past ``max_line_bytes`` is skipped, never held whole (``skipped`` counts)."""

    __slots__ = ("_buffer", "_skipping", "max_line_bytes", "skipped")

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._skipping = False
        self.skipped = 0

    def feed(self, chunk: bytes) -> list[Any]:
        out: list[Any] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._line(bytes(chunk[start:end]), out)
            start = end + 1
        rest = chunk[start:]
        if not self._skipping:
            self._buffer += rest
            if len(self._buffer) > self.max_line_bytes:
                self._buffer.clear()
                self._skipping = True
        return out

    def close(self) -> list[Any]:
        out: list[Any] = []
        self._line(b"", out)
        return out

    def _line(self, piece: bytes, out: list[Any]) -> None:
        if self._skipping:
            self._skipping = False
            self.skipped += 1
            return
        line = bytes(self._buffer) + piece if self._buffer else piece
        self._buffer.clear()
        if len(line) > self.max_line_bytes:
            self.skipped += 1
            return
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                self.skipped += 1

"""``POST /v1/usage``: usage records from outside the proxy, with a gateway key.

The same key, the same attribution rules, the same price book and the same writer as a proxied
request; errors in OpenAI's shape. Partial success: each record is accepted, a duplicate (its id
was seen before), or rejected with its reason; a batch is never refused for one bad record.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from spendgate.gateway.asgi import (
    JSON_HEADERS,
    Receive,
    Scope,
    Send,
    read_body,
    request_headers,
    send_error,
    send_response,
)
from spendgate.gateway.errors import OPENAI, GatewayError, invalid_request, request_too_large
from spendgate.gateway.proxy import Gateway, _parse_json
from spendgate.ingest.body import BadEncoding, BodyTooLarge, decoded_body
from spendgate.ingest.records import build_events
from spendgate.ingest.service import Recorder

log = logging.getLogger("spendgate.ingest")

MAX_RECORDS = 10_000  # records in one request; more is a 413 (send several batches)
MAX_INFLIGHT = 8  # batches being recorded at once per gateway process; past it, 429 and retry
# How long a request waits for the ledger before answering 503 (its records stay spooled and
# are stored when the ledger is back; sending them again then answers "duplicates").
LEDGER_PATIENCE_S = 30.0


def ledger_unavailable(reason: str) -> GatewayError:
    return GatewayError(
        503,
        "service_unavailable",
        f"the ledger cannot take these records right now ({reason[:200]}); they are kept and will be stored:"
        " send the batch again later (records already stored answer as duplicates)",
        code="ledger_unavailable",
        headers=((b"retry-after", b"5"),),
    )


class UsageAPI:
    def __init__(self, gateway: Gateway, recorder: Recorder, *, max_records: int = MAX_RECORDS) -> None:
        self.gateway = gateway
        self.recorder_store = gateway.writer.store
        self.recorder = recorder
        self.max_records = max_records
        self.max_inflight = MAX_INFLIGHT
        self._inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._handle(scope, receive)
        except GatewayError as error:
            await send_error(send, error, OPENAI)
            return
        await send_response(send, 200, JSON_HEADERS, orjson.dumps(answer))

    async def _handle(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        gateway = self.gateway
        headers = request_headers(scope)
        key = await gateway.authenticate(headers)
        limit = gateway.max_body_bytes
        raw = await read_body(receive, headers, limit)
        try:
            raw = decoded_body(raw, headers.get("content-encoding"), limit)
        except BodyTooLarge:
            raise request_too_large(limit) from None
        except BadEncoding as exc:
            raise invalid_request(str(exc)) from None
        body = _parse_json(raw)
        records = body.get("records")
        if not isinstance(records, list):
            raise invalid_request('the body must be {"records": [...]}: a list of usage records')
        if len(records) > self.max_records:
            raise GatewayError(
                413,
                "request_too_large",
                f"{len(records)} records in one request; at most {self.max_records}: send several batches",
            )
        enforcer = gateway.enforcer
        horizon = await asyncio.to_thread(self.recorder_store.raw_events_pruned_before)
        outcome = build_events(
            records,
            key=key,
            directory=gateway.directory,
            prices=gateway.prices,
            now=gateway.clock(),
            source="ingest",
            endpoint="/v1/usage",
            missing_dimensions=enforcer.rules.missing_dimensions if enforcer is not None else None,
            horizon=horizon,
        )
        events = list(outcome.events.values())
        if self._inflight >= self.max_inflight:
            raise GatewayError(
                429,
                "rate_limit_exceeded",
                f"{self.max_inflight} batches are being recorded already; retry shortly",
                headers=((b"retry-after", b"1"),),
            )
        self._inflight += 1
        try:
            return await self._record(events, outcome)
        finally:
            self._inflight -= 1

    async def _record(self, events: list, outcome: Any) -> dict[str, Any]:
        # Shielded: a request that gives up waiting (or whose client leaves) does not take the
        # recording with it; the budget counters are settled when the ledger answers.
        recording = asyncio.ensure_future(self.recorder.record(events))
        recording.add_done_callback(_retrieve)
        try:
            stored = await asyncio.wait_for(asyncio.shield(recording), LEDGER_PATIENCE_S)
        except TimeoutError:
            raise ledger_unavailable(f"no answer within {LEDGER_PATIENCE_S:g}s") from None
        except Exception as exc:
            log.exception("could not record %d ingested records", len(events))
            raise ledger_unavailable(type(exc).__name__) from exc
        accepted = sum(1 for event in events if event.id in stored.new)
        index_of = {event.id: index for index, event in outcome.events.items()}
        refused = [{"index": index_of[event_id], "error": reason} for event_id, reason in stored.refused.items()]
        return {
            "accepted": accepted,
            "duplicates": len(events) - accepted - len(refused) + len(outcome.duplicates),
            "rejected": sorted([*outcome.rejected, *refused], key=lambda item: item["index"]),
        }


def _retrieve(done: asyncio.Future[Any]) -> None:
    """A recording whose request stopped waiting (and answered 503) still ends: its outcome is
    logged here rather than as an exception nobody retrieved."""
    if not done.cancelled() and done.exception() is not None:
        log.error("recording ingested spend failed after its request answered: %r", done.exception())

"""``POST /v1/traces``: OTLP/HTTP trace exports, whose GenAI spans become usage events.

As the OTLP specification asks of a receiver: binary protobuf (``application/x-protobuf``) or
JSON (``application/json``), gzip or not; the answer in the request's encoding, a
``partial_success`` naming the spans rejected and why; errors as a ``google.rpc.Status`` with
400 for data that is not an export, 413 past the body or span bound, and 429/503 with
``Retry-After`` when the client should retry later (the exporters do).

The gateway key comes in ``Authorization: Bearer sg-…`` or ``x-api-key``
(``OTEL_EXPORTER_OTLP_HEADERS``). A span is stored once per (trace id, span id), however often
it is exported; a span describing a call that went through this gateway (its id, or one of its
children's, is the traceparent the proxied request carried) is linked to that call's event and
not counted again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spendgate.gateway.asgi import Receive, Scope, Send, read_body, request_headers, send_response
from spendgate.gateway.errors import GatewayError
from spendgate.gateway.ingest_api import LEDGER_PATIENCE_S, _retrieve
from spendgate.gateway.proxy import Gateway
from spendgate.ingest.body import BadEncoding, BodyTooLarge, decoded_body
from spendgate.ingest.otlp import (
    OTLPError,
    TooManySpans,
    children_of,
    decode_json,
    decode_protobuf,
    span_records,
    spans_of,
)
from spendgate.ingest.records import build_events
from spendgate.ingest.service import Recorder
from spendgate.ingest.tracecontext import span_ref
from spendgate.jsondepth import MAX_DEPTH, deeper_than
from spendgate.ledger.spool.writer import EventWriter

log = logging.getLogger("spendgate.ingest")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_INFLIGHT = 8  # exports recorded at once per gateway process; past it, 429 and retry
MAX_MESSAGE = 1000  # characters of partial_success.error_message
# google.rpc.Code of each HTTP status (the Status body's code).
_RPC_CODE = {400: 3, 401: 16, 403: 7, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}


@dataclasses.dataclass
class OTLPFailure(Exception):
    status: int
    message: str
    retry_after: int | None = None


def status_body(code: int, message: str, as_json: bool) -> bytes:
    """A ``google.rpc.Status`` {code, message}: JSON, or protobuf encoded by hand (two fields;
    not worth a dependency on googleapis-common-protos)."""
    if as_json:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class TracesAPI:
    def __init__(self, gateway: Gateway, recorder: Recorder, writer: EventWriter) -> None:
        self.gateway = gateway
        self.recorder = recorder
        self.writer = writer
        self.max_inflight = MAX_INFLIGHT
        self._inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        as_json = headers.get("content-type", "").split(";")[0].strip().lower() == JSON
        kind = PROTOBUF if not as_json else JSON
        try:
            if scope["method"] != "POST":
                raise OTLPFailure(405, "only POST is served on /v1/traces")
            response, counts = await self._handle(scope, receive, as_json)
        except OTLPFailure as failure:
            extra = [(b"retry-after", str(failure.retry_after).encode())] if failure.retry_after else []
            body = status_body(_RPC_CODE.get(failure.status, 2), failure.message, as_json)
            await send_response(send, failure.status, [(b"content-type", kind.encode()), *extra], body)
            return
        counted = [(f"x-spendgate-{name}".encode(), str(value).encode()) for name, value in counts.items()]
        await send_response(send, 200, [(b"content-type", kind.encode()), *counted], response)

    async def _handle(self, scope: Scope, receive: Receive, as_json: bool) -> tuple[bytes, dict[str, int]]:
        gateway = self.gateway
        try:
            headers = request_headers(scope)
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type not in (PROTOBUF, JSON):
                raise OTLPFailure(415, f"Content-Type must be {PROTOBUF} or {JSON}, not {content_type[:64]!r}")
            key = await gateway.authenticate(headers)
            raw = await read_body(receive, headers, gateway.max_body_bytes)
        except GatewayError as error:
            raise OTLPFailure(error.status, error.message) from None
        try:
            raw = decoded_body(raw, headers.get("content-encoding"), gateway.max_body_bytes)
            if as_json:
                try:
                    document = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise OTLPError(f"the body is not valid JSON: {exc}") from None
                if deeper_than(raw, document, MAX_DEPTH):
                    raise OTLPError(f"the body nests more than {MAX_DEPTH} levels of arrays and objects")
                request = decode_json(document)
            else:
                request = decode_protobuf(raw)
            spans = spans_of(request)
        except (BodyTooLarge, TooManySpans) as exc:
            raise OTLPFailure(413, str(exc)) from None
        except (BadEncoding, OTLPError) as exc:
            raise OTLPFailure(400, str(exc)) from None

        if self._inflight >= self.max_inflight:
            raise OTLPFailure(
                429, f"{self.max_inflight} exports are being recorded already; retry shortly", retry_after=1
            )
        self._inflight += 1
        try:
            return await self._record(key, spans, as_json)
        finally:
            self._inflight -= 1

    async def _record(self, key: Any, spans: list, as_json: bool) -> tuple[bytes, dict[str, int]]:
        gateway = self.gateway
        mapped = span_records(spans)
        enforcer = gateway.enforcer
        horizon = await asyncio.to_thread(self.writer.store.raw_events_pruned_before)
        outcome = build_events(
            [fields for _, fields in mapped],
            key=key,
            directory=gateway.directory,
            prices=gateway.prices,
            now=gateway.clock(),
            source="otlp",
            endpoint="otlp",
            missing_dimensions=enforcer.rules.missing_dimensions if enforcer is not None else None,
            namespace="",  # (trace id, span id) is unique the world over: whoever exports it
            horizon=horizon,
        )
        children = children_of(spans)
        events, candidates = [], {}
        for index, event in outcome.events.items():
            span = mapped[index][0]
            events.append(dataclasses.replace(event, otel_span=span.ref))
            candidates[event.id] = [span.ref, *children.get(span.ref, ())]
        try:
            # A proxied call's event may still be on its way to the ledger: written first.
            await asyncio.wait_for(self.writer.flush(), LEDGER_PATIENCE_S)
            store = self.writer.store
            refs = {span.ref for span in spans} | {ref for refs in candidates.values() for ref in refs}
            seen = await asyncio.to_thread(store.proxied_spans, sorted(refs))
            # A span a proxied call carried (an HTTP client's) links its parent, the GenAI span
            # of that call, which may come in a later export.
            links = [
                (span_ref(span.trace_id, span.parent_span_id), span.ref)
                for span in spans
                if span.parent_span_id and span.ref in seen
            ]
            await asyncio.to_thread(store.link_spans, links, gateway.clock())
            seen.update(parent for parent, _ in links)
        except Exception as exc:
            log.exception("could not look up the proxied calls of %d spans", len(events))
            raise OTLPFailure(
                503, f"the ledger cannot be read right now ({type(exc).__name__})", retry_after=5
            ) from exc
        linked = {e.id for e in events if any(ref in seen for ref in candidates[e.id])}
        fresh = [e for e in events if e.id not in linked]
        recording = asyncio.ensure_future(self.recorder.record(fresh))
        recording.add_done_callback(_retrieve)
        try:
            stored = await asyncio.wait_for(asyncio.shield(recording), LEDGER_PATIENCE_S)
        except Exception as exc:
            log.exception("could not record %d spans", len(fresh))
            raise OTLPFailure(503, "the ledger cannot take these spans right now; retry later", retry_after=5) from exc
        accepted = sum(1 for e in fresh if e.id in stored.new)
        index_of = {event.id: index for index, event in outcome.events.items()}
        rejected = [*outcome.rejected, *({"index": index_of[i], "error": r} for i, r in stored.refused.items())]
        counts = {
            "accepted": accepted,
            "duplicates": len(fresh) - accepted - len(stored.refused) + len(outcome.duplicates),
            "linked": len(linked),
            "rejected": len(rejected),
        }
        response = ExportTraceServiceResponse()
        if rejected:
            reasons = "; ".join(f"{mapped[r['index']][0].span_id}: {r['error']}" for r in rejected)
            response.partial_success.rejected_spans = len(rejected)
            response.partial_success.error_message = reasons[:MAX_MESSAGE]
        if as_json:
            from google.protobuf import json_format

            return orjson.dumps(json_format.MessageToDict(response)), counts
        return response.SerializeToString(), counts

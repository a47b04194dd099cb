"""Forwarding a provider request: authenticate, attribute, forward, relay, account.

The order is the contract's: everything that can refuse a request (auth, size, JSON,
attribution) happens before a byte goes upstream, so a refused request reaches no
provider and costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from spendgate.attribution import (
    Attribution,
    AttributionError,
    AttributionForbidden,
    BodyRule,
    Directory,
    GatewayKey,
    attribute,
    body_values,
    hash_key,
)
from spendgate.budgets.enforcer import Admission, BudgetExceeded, Enforcer, Refusal
from spendgate.budgets.estimate import reservation_tokens
from spendgate.budgets.reservations import ReservationTable
from spendgate.gateway.accounting import Outcome, RequestContext, begin_record, settle
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
from spendgate.gateway.errors import (
    ANTHROPIC,
    GEMINI,
    GatewayError,
    approval_required,
    authentication_error,
    enforcement_unavailable,
    invalid_request,
    permission_denied,
    refusal_error,
    upstream_connect_timeout,
    upstream_timeout,
    upstream_unreachable,
)
from spendgate.gateway.native import NativeRequest
from spendgate.gateway.routes import INCLUDE_USAGE_KINDS, Route
from spendgate.gateway.upstream import Target, Upstreams
from spendgate.ingest.tracecontext import traceparent_ref
from spendgate.jsondepth import MAX_DEPTH, deeper_than
from spendgate.ledger.events import EventIds, UsageEvent
from spendgate.ledger.spool.writer import EventWriter
from spendgate.money import format_usd
from spendgate.pricing import PriceBook
from spendgate.usage import (
    ChatStreamObserver,
    MessagesStreamObserver,
    ResponsesStreamObserver,
    SSESplitter,
    Unparsed,
    Usage,
    anthropic_response_usage,
    openai_response_usage,
    request_service_tier,
)
from spendgate.usage.bounds import MAX_EVENT_COST_USD
from spendgate.usage.gemini import GeminiStreamObserver, estimation_body, gemini_response_usage
from spendgate.usage.sse import MAX_EVENT_BYTES

log = logging.getLogger("spendgate.gateway")

# Client headers worth passing on; everything else (its credentials above all) stays here.
FORWARDED_REQUEST_HEADERS = (
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "accept",
    "idempotency-key",
)
# Upstream response headers that describe the hop, not the payload.
HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"content-encoding",
        b"server",
        b"date",
    }
)


@dataclass
class Gateway:
    """Everything a request needs, wired once by the app factory."""

    upstreams: Upstreams
    prices: PriceBook
    writer: EventWriter
    clock: Callable[[], datetime]
    max_body_bytes: int
    upstream_timeout: float
    directory: Directory
    connect_timeout: float = 10.0
    stream_deadline: float | None = None  # seconds a stream may last in all, however it trickles
    max_stream_event_bytes: int = MAX_EVENT_BYTES
    session: aiohttp.ClientSession | None = None
    refresh_directory: Callable[[], Any] | None = None  # awaitable factory, for unknown keys
    # Opens (or finds) an exhausted window's approval request: its id (store/approvals.py).
    request_approval: Callable[[BudgetExceeded], Awaitable[str]] | None = None
    enforcer: Enforcer | None = None
    # What requests without max_tokens reserve (strict: nothing learned); swapped whole on refresh.
    reservations: Callable[[], ReservationTable] | None = None
    new_event_id: EventIds = field(default_factory=EventIds)
    body_rules: tuple[BodyRule, ...] = ()  # [[attribution.body]]: dimensions read from bodies

    # --- refusals ----------------------------------------------------------------------
    async def authenticate(self, headers: dict[str, str]) -> GatewayKey:
        # x-api-key (Anthropic), api-key (Azure OpenAI), x-goog-api-key (Gemini), or a bearer token.
        secret = headers.get("x-api-key") or headers.get("api-key") or headers.get("x-goog-api-key")
        if not secret:
            authorization = headers.get("authorization", "")
            if authorization[:7].lower() == "bearer ":
                secret = authorization[7:].strip()
        if not secret:
            raise authentication_error(
                "missing gateway key: send it as 'Authorization: Bearer sg-…', 'x-api-key', 'api-key' "
                "or 'x-goog-api-key'"
            )
        key_hash = hash_key(secret)
        key = self.directory.keys_by_hash.get(key_hash)
        if key is None and self.refresh_directory is not None:
            # A key made a moment ago by another process: one reload, rate-limited there.
            await self.refresh_directory()
            key = self.directory.keys_by_hash.get(key_hash)
        if key is None:
            raise authentication_error("unknown gateway key")
        if key.revoked:
            raise authentication_error(f"gateway key {key.name!r} has been revoked")
        return key

    def attribute(self, key: GatewayKey, headers: dict[str, str], body: dict[str, Any] | None) -> Attribution:
        """Who owns the request: headers, then what the body rules find, then the key's default."""
        try:
            found = body_values(self.body_rules, body) if self.body_rules and body else None
            if found:
                return attribute(key, headers, self.directory, found.fields, found.tags)
            return attribute(key, headers, self.directory)
        except AttributionError as exc:
            raise invalid_request(str(exc)) from exc
        except AttributionForbidden as exc:
            raise permission_denied(str(exc), exc.code) from exc

    # --- the request ---------------------------------------------------------------------
    async def handle(
        self, scope: Scope, receive: Receive, send: Send, route: Route, native: NativeRequest | None = None
    ) -> None:
        try:
            headers = request_headers(scope)
            if (
                native is not None
                and native.key
                and not any(name in headers for name in ("x-goog-api-key", "x-api-key", "api-key", "authorization"))
            ):
                headers["x-goog-api-key"] = native.key  # Gemini's ?key=: never forwarded upstream
            key = await self.authenticate(headers)
            raw = await read_body(receive, headers, self.max_body_bytes) if route.method == "POST" else b""
            if not route.billed:
                await self._pass_through(send, route, raw, headers)
                return
            body = _parse_json(raw)
            attribution = self.attribute(key, headers, body)
            model = body.get("model")
            if native is not None and native.model is None and not (isinstance(model, str) and model):
                raise invalid_request("'model' is required and must be a string (the deployment name)")
            if native is not None:
                target = native.target(model if isinstance(model, str) else None)
            elif not isinstance(model, str) or not model:
                raise invalid_request("'model' is required and must be a string")
            else:
                target = self.upstreams.resolve(route, model)
            self.upstreams.check_credentials(target.upstream)
            now = self.clock()
            request_id = self.new_event_id(now)
            # What the estimates read: Gemini's contents and generationConfig in the common fields.
            estimated_body = estimation_body(body) if route.family == GEMINI else body
            admission = await self._admit(request_id, route, target, estimated_body, attribution, now)
        except GatewayError as error:
            await send_error(send, error, route.family)
            return

        # Admission to settlement, bracketed once: whatever happens from here on (an error in
        # this process, a cancelled task, the client gone), the reservation ends — settled at
        # what the ledger records for the request, or at zero when nothing was recorded.
        outcome = Outcome(http_status=502)
        try:
            await self._send_upstream(
                send,
                receive,
                route,
                target,
                body,
                raw,
                headers,
                attribution,
                request_id,
                now,
                outcome,
                _budget_headers(admission),
                stream=(native is not None and native.stream) or body.get("stream") is True,
                estimated_body=estimated_body,
            )
        finally:
            if admission is not None:
                await self._settle_budgets(admission, outcome.event)

    async def _send_upstream(
        self,
        send: Send,
        receive: Receive,
        route: Route,
        target: Target,
        body: dict,
        raw: bytes,
        headers: dict[str, str],
        attribution: Attribution,
        request_id: str,
        now: datetime,
        outcome: Outcome,
        budget_headers: list[tuple[bytes, bytes]],
        *,
        stream: bool,
        estimated_body: dict,
    ) -> None:
        strip_usage = False
        if stream and route.kind in INCLUDE_USAGE_KINDS:
            options = body.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                # Ask for usage on the client's behalf; the extra chunk is withheld from it.
                body["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
                strip_usage = True
        if target.model_rewritten:
            body["model"] = target.model
        if strip_usage or target.model_rewritten:
            raw = orjson.dumps(body)

        ctx = RequestContext(
            request_id=request_id,
            started=now,
            started_perf=time.perf_counter(),
            endpoint=route.path,
            provider=target.upstream.name,
            model=target.price_model,
            stream=stream,
            attribution=attribution,
            body=estimated_body,
            otel_span=traceparent_ref(headers.get("traceparent")),
        )
        # On local disk before a byte goes upstream: if this process dies mid-request, the
        # restart records the request as incomplete rather than forgetting it.
        self.writer.begin(request_id, begin_record(ctx))
        try:
            await self._forward(send, receive, route, target, ctx, raw, headers, outcome, strip_usage, budget_headers)
        finally:
            # Whatever happened (cancellation included), the request is in the ledger once.
            if outcome.event is None:
                event = settle(ctx, outcome, self.prices)
                self.writer.record(event)
                outcome.event = event

    async def _admit(
        self, request_id: str, route: Route, target: Target, body: dict, owner: Attribution, now: datetime
    ) -> Admission | None:
        enforcer = self.enforcer
        if enforcer is None:
            return None
        # A Gemini request is read as a chat (its estimation body has messages, and n answers).
        kind = "chat" if route.family == GEMINI else route.kind
        learned = self.reservations().output_tokens(target.price_model, owner.project) if self.reservations else None
        input_tokens, output_tokens = reservation_tokens(kind, target.price_model, body, learned)
        provider, model = target.upstream.name, target.price_model
        service_tier = request_service_tier(body)  # a priority request reserves at the priority price
        worst = self.prices.price(
            provider, model, Usage(input_tokens=input_tokens, output_tokens=output_tokens), now, service_tier
        )
        # No event is ever recorded above the per-event ceiling, so no request needs more held
        # for it (a client's max_tokens of 10^18 must not overflow the counters).
        worst_cost = min(worst.cost, MAX_EVENT_COST_USD) if worst else Decimal(0)

        def least_cost() -> Decimal:
            # Its input alone, asked only when a budget refuses it: one that cannot take even
            # that (and has no cheaper request to go by) is spent.
            least = self.prices.price(provider, model, Usage(input_tokens=input_tokens), now, service_tier)
            return min(least.cost, MAX_EVENT_COST_USD) if least else Decimal(0)

        try:
            return await enforcer.admit(
                request_id,
                owner,
                worst_cost,
                input_tokens + output_tokens,
                now,
                least_cost=least_cost,
                output_tokens=output_tokens,
            )
        except Refusal as refusal:
            if (
                isinstance(refusal, BudgetExceeded)
                and refusal.exhausted
                and refusal.budget.on_exhausted == "approve"
                and self.request_approval is not None
            ):
                # An approver may grant the window extra spend: the 402 carries the request.
                try:
                    approval_id = await self.request_approval(refusal)
                except Exception:
                    log.exception("could not open an approval request for %s", refusal.budget.name)
                else:
                    raise approval_required(refusal, approval_id) from refusal
            raise refusal_error(refusal) from refusal
        except Exception as exc:
            # Redis unreachable, or a window's spend unreadable from the ledger.
            log.exception("could not check budgets and rate limits for %s", request_id)
            raise enforcement_unavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _settle_budgets(self, admission: Admission, event: UsageEvent | None) -> None:
        """End a reservation at the recorded event's cost, or at zero (and no tokens) when the
        request failed here before anything was recorded."""
        assert self.enforcer is not None
        try:
            if event is None:
                await self.enforcer.settle(admission, Decimal(0), 0)
            else:
                await self.enforcer.settle(
                    admission, event.cost_usd, event.input_tokens + event.output_tokens, at=event.ts
                )
        except Exception:
            # The ledger has the event; counters are rebuilt from it if they drift. The
            # reservation must not outlive the request, holding its budget until it expires.
            log.exception("could not settle budget reservation %s; releasing it", admission.request_id)
            try:
                await self.enforcer.release(admission)
            except Exception:
                log.exception("could not release budget reservation %s either", admission.request_id)

    async def _forward(
        self,
        send: Send,
        receive: Receive,
        route: Route,
        target: Target,
        ctx: RequestContext,
        raw: bytes,
        headers: dict[str, str],
        outcome: Outcome,
        strip_usage: bool,
        budget_headers: list[tuple[bytes, bytes]],
    ) -> None:
        upstream = target.upstream
        own = [
            (b"x-spendgate-request-id", ctx.request_id.encode()),
            (b"x-spendgate-project", (ctx.attribution.project or "unallocated").encode()),
            *budget_headers,
        ]
        assert self.session is not None
        try:
            response = await self.session.post(
                target.url or upstream.url_for(route.path),
                data=raw,
                headers=_upstream_headers(upstream.auth_headers, headers),
            )
        except aiohttp.ClientConnectorError as exc:
            outcome.http_status = 502
            await send_error(send, upstream_unreachable(upstream.name, str(exc.os_error or exc)), route.family, own)
            return
        except aiohttp.ConnectionTimeoutError:
            outcome.http_status = 502  # nothing was sent, so nothing was billed
            await send_error(send, upstream_connect_timeout(upstream.name, self.connect_timeout), route.family, own)
            return
        except (TimeoutError, aiohttp.ServerTimeoutError):
            outcome.http_status, outcome.broken = 504, True
            await send_error(send, upstream_timeout(upstream.name, self.upstream_timeout), route.family, own)
            return
        except aiohttp.ClientError as exc:
            # Sent, but the connection failed before an answer: the provider may have
            # started work, so this is an incomplete request, not a free one.
            outcome.http_status, outcome.broken = 502, True
            await send_error(send, upstream_unreachable(upstream.name, str(exc)), route.family, own)
            return

        outcome.upstream_request_id = response.headers.get("x-request-id") or response.headers.get("request-id")
        is_stream = ctx.stream and response.status == 200 and "text/event-stream" in response.content_type
        try:
            if is_stream:
                await self._relay_stream(send, receive, route, response, ctx, outcome, own, strip_usage)
            else:
                await self._relay_body(send, route, response, ctx, outcome, own)
        finally:
            response.release()

    async def _relay_body(
        self,
        send: Send,
        route: Route,
        response: aiohttp.ClientResponse,
        ctx: RequestContext,
        outcome: Outcome,
        own: list,
    ) -> None:
        try:
            payload = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome.http_status, outcome.broken = 502, True
            await send_error(send, upstream_unreachable(route.family, f"answer cut short: {exc}"), route.family, own)
            return
        outcome.http_status = response.status
        if response.status < 400:
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                parsed = None
            parse = _RESPONSE_PARSERS.get(route.family, openai_response_usage)
            outcome.usage, outcome.reported_model = parse(parsed)
            outcome.output_chars = len(payload)  # for an estimate, should the usage be missing or absurd
        headers = _response_headers(response)
        headers.extend(own)
        # Settled and recorded before the response leaves, so the client is told the very
        # figure the ledger records, and nothing answered can be lost to a crash.
        event = outcome.event = settle(ctx, outcome, self.prices)
        self.writer.record(event)
        if event.cost_usd is not None:
            headers.append((b"x-spendgate-cost-usd", format_usd(event.cost_usd).encode()))
        await send_response(send, response.status, headers, payload)

    async def _relay_stream(
        self,
        send: Send,
        receive: Receive,
        route: Route,
        response: aiohttp.ClientResponse,
        ctx: RequestContext,
        outcome: Outcome,
        own: list,
        strip_usage: bool,
    ) -> None:
        if route.family == ANTHROPIC:
            observer: Any = MessagesStreamObserver()
        elif route.family == GEMINI:
            observer = GeminiStreamObserver()
        elif route.kind == "responses":
            observer = ResponsesStreamObserver()
        else:
            observer = ChatStreamObserver(strip_usage_chunk=strip_usage)
        outcome.http_status = 200
        headers = _response_headers(response)
        headers.extend(own)
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        disconnected = asyncio.Event()
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, disconnected, response))
        splitter = SSESplitter(self.max_stream_event_bytes)
        ended = complete = False  # the upstream body ended without error / with its final event
        try:
            async with asyncio.timeout(self.stream_deadline) as deadline:
                async for chunk in response.content.iter_any():
                    kept = [
                        event
                        for event in splitter.feed(chunk)
                        # An event too large to parse is forwarded unread (see usage/sse.py).
                        if event.__class__ is Unparsed or observer.observe(event)
                    ]
                    if outcome.event is None and observer.usage is not None:
                        self._record_reported(ctx, outcome, observer, splitter)
                    if kept:
                        await send({"type": "http.response.body", "body": b"".join(kept), "more_body": True})
                    if disconnected.is_set():
                        break
                else:
                    ended = not disconnected.is_set()
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            if deadline.expired():
                log.info("stream of %s cut at the %ss stream deadline", ctx.request_id, self.stream_deadline)
                response.close()  # closing is how a provider learns to stop generating
            else:
                log.info("upstream stream ended early: %r", exc)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            outcome.usage = observer.usage
            outcome.reported_model = observer.model
            outcome.output_chars = observer.output_chars + splitter.unparsed_bytes
            outcome.unparsed_bytes = splitter.unparsed_bytes
            outcome.partial_usage = getattr(observer, "partial_usage", None)
            outcome.broken = True  # until it is known to have ended with its final event
        if ended:
            tail = splitter.tail()
            keep = bool(tail) and observer.observe(tail)
            if outcome.event is None and observer.usage is not None:
                self._record_reported(ctx, outcome, observer, splitter)
            if keep:
                await send({"type": "http.response.body", "body": tail, "more_body": True})
            complete = observer.finished
            if not complete:
                # Closed cleanly, but before the provider said it was done: a truncated answer.
                log.info("upstream stream of %s closed before its final event", ctx.request_id)
        outcome.usage, outcome.broken = observer.usage, not complete
        if disconnected.is_set():
            return
        if not complete:
            # Never end a cut stream as if it had completed: the client gets an error event in
            # its provider's stream shape, which the SDKs raise.
            await send({"type": "http.response.body", "body": _stream_error(route.family), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _record_reported(self, ctx: RequestContext, outcome: Outcome, observer: Any, splitter: SSESplitter) -> None:
        """The provider's usage is in: record the request before relaying the stream's end."""
        outcome.http_status, outcome.usage, outcome.reported_model = 200, observer.usage, observer.model
        outcome.unparsed_bytes = splitter.unparsed_bytes
        outcome.event = settle(ctx, outcome, self.prices)
        self.writer.record(outcome.event)

    async def _pass_through(self, send: Send, route: Route, raw: bytes, headers: dict[str, str]) -> None:
        """Unbilled endpoints (model list, token counting): forwarded, not recorded."""
        upstream = self.upstreams.openai if route.family != ANTHROPIC else self.upstreams.anthropic
        self.upstreams.check_credentials(upstream)
        assert self.session is not None
        try:
            async with self.session.request(
                route.method,
                upstream.url_for(route.path),
                data=raw or None,
                headers=_upstream_headers(upstream.auth_headers, headers),
            ) as response:
                payload = await response.read()
                await send_response(send, response.status, _response_headers(response), payload)
        except aiohttp.ConnectionTimeoutError:
            await send_error(send, upstream_connect_timeout(upstream.name, self.connect_timeout), route.family)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await send_error(send, upstream_timeout(upstream.name, self.upstream_timeout), route.family)
        except aiohttp.ClientError as exc:
            await send_error(send, upstream_unreachable(upstream.name, str(exc)), route.family)


def _budget_headers(admission: Admission | None) -> list[tuple[bytes, bytes]]:
    """The nearest budget (least remaining) and what remains of it, for the client."""
    if admission is None or admission.nearest is None:
        return []
    name, remaining = admission.nearest
    return [
        (b"x-spendgate-budget", name.encode()),
        (b"x-spendgate-budget-remaining-usd", format_usd(max(remaining, Decimal(0))).encode()),
    ]


_RESPONSE_PARSERS = {ANTHROPIC: anthropic_response_usage, GEMINI: gemini_response_usage}


def _stream_error(family: str) -> bytes:
    message = "the upstream stream ended before the provider finished; spendgate recorded it as incomplete"
    if family == GEMINI:
        # google-genai raises on a chunk that carries an error object.
        error = {"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}
        return b"data: " + orjson.dumps(error) + b"\r\n\r\n"
    if family == ANTHROPIC:
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    payload = {
        "type": "error",
        "error": {"message": message, "type": "upstream_error", "code": "upstream_error"},
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    if deeper_than(raw, body, MAX_DEPTH):
        raise invalid_request(f"request body nests more than {MAX_DEPTH} levels of arrays and objects")
    return body


def _upstream_headers(auth: tuple[tuple[str, str], ...], client: dict[str, str]) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    for name in FORWARDED_REQUEST_HEADERS:
        value = client.get(name)
        if value is not None:
            headers[name] = value
    headers.update(auth)
    return headers


def _response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in response.raw_headers if name.lower() not in HOP_HEADERS]


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event, response: aiohttp.ClientResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            # Stop reading upstream at once: closing the connection is how a provider learns
            # to stop generating.
            response.close()
            return


__all__ = ["JSON_HEADERS", "Gateway"]

"""The simulator ASGI app: routes provider paths to shape builders and logs every request.

Raw ASGI on purpose: it is the benchmark upstream, so the non-stream path is one body read,
one JSON parse, one substring search for a directive, one JSON dump and two sends.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from spendgate.simulator import anthropic_shapes, gemini_shapes, openai_shapes
from spendgate.simulator.admin_api import ADMIN_PATH_PREFIX, AdminApi
from spendgate.simulator.asgi_io import (
    EVENT_STREAM_HEADERS,
    JSON_CONTENT_TYPE,
    Headers,
    RawHeaders,
    Receive,
    Send,
    break_connection,
    read_body,
    send_response,
)
from spendgate.simulator.batch_api import BatchApi
from spendgate.simulator.log import RequestRecord, SimulatorLog
from spendgate.simulator.plan import DirectiveError, Plan, Provider, make_plan
from spendgate.simulator.sse import EventStream
from spendgate.usage.gemini import estimation_body

# Gemini's native paths, and Azure OpenAI's (deployment URLs and the /openai/v1/ form).
_GEMINI_PATH = re.compile(r"/(?:v1beta|v1|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent)")
_AZURE_DEPLOYMENT_PATH = re.compile(r"/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)")
_AZURE_V1_PATH = re.compile(r"/openai(?:/v1)?/(chat/completions|completions|embeddings|responses)")

LOG_PATH = "/_sim/log"
RESET_PATH = "/_sim/reset"
RETRY_AFTER_SECONDS = b"1"


@dataclass(slots=True)
class Exchange:
    """One request being answered."""

    receive: Receive
    send: Send
    raw: bytes
    request: dict[str, Any]
    record: RequestRecord
    number: int  # unique within the app; makes the ids of everything answered

    @property
    def request_id(self) -> str:
        return f"req_sim{self.number}"


Handler = Callable[[Exchange, Plan], Awaitable[None]]


class SimulatorApp:
    """An ASGI app faking the OpenAI and Anthropic HTTP APIs. ``log`` holds what it was asked;
    ``admin`` serves the admin usage and cost reports (empty unless given a dataset)."""

    def __init__(
        self, log: SimulatorLog | None = None, *, default_latency_ms: float = 0.0, admin: AdminApi | None = None
    ) -> None:
        self.log = SimulatorLog() if log is None else log
        self.admin = AdminApi() if admin is None else admin
        self.default_latency_ms = default_latency_ms
        self.batches = BatchApi()  # OpenAI files and batches, Anthropic message batches
        self._numbers = itertools.count(1)
        # (provider, handler, whether the input is messages with their framing tokens)
        self._routes: dict[str, tuple[Provider, Handler, bool]] = {
            "/v1/chat/completions": ("openai", self._chat_completions, True),
            "/v1/completions": ("openai", self._completions, False),
            "/v1/responses": ("openai", self._responses, True),
            "/v1/embeddings": ("openai", self._embeddings, False),
            "/v1/messages": ("anthropic", self._messages, True),
            "/v1/messages/count_tokens": ("anthropic", self._count_tokens, True),
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith("/_sim/"):
            await self._control(method, path, send)
            return
        if path.startswith(ADMIN_PATH_PREFIX) and self.admin.serves(path):
            await self.admin(scope, receive, send)  # reports are not generations: not in the log
            return

        raw = await read_body(receive)
        request = _parse_json(raw)
        headers: RawHeaders = scope["headers"]
        record = RequestRecord(path, method, body=request, raw_headers=headers)
        self.log.append(record)
        exchange = Exchange(
            receive, send, raw, request if isinstance(request, dict) else {}, record, next(self._numbers)
        )

        route = self._routes.get(path)
        if self.batches.serves(path):
            record.status = await self.batches(scope, raw, send)
        elif route is not None and method == "POST":
            provider, handler, framed = route
            await self._serve_generation(exchange, provider, handler, framed, headers, request)
        elif (gemini := _GEMINI_PATH.fullmatch(path)) is not None and method == "POST":
            await self._gemini(exchange, scope, gemini.group(1), gemini.group(2) == "streamGenerateContent")
        elif path.startswith("/openai/") and method == "POST":
            await self._azure(exchange, scope, path)
        elif path.startswith("/v1beta/openai/") and "/v1" + path.removeprefix("/v1beta/openai") in self._routes:
            # Gemini's OpenAI-compatible endpoints: OpenAI's shapes, Google's key.
            _, handler, framed = self._routes["/v1" + path.removeprefix("/v1beta/openai")]
            authorized = bool(_header(headers, b"x-goog-api-key")) or _is_authorized("openai", headers)
            await self._serve_generation(exchange, "openai", handler, framed, headers, request, authorized=authorized)
        elif path == "/v1/models" and method == "GET":
            await self._models(exchange, headers)
        else:
            await self._error(exchange, "openai", 404, f"Invalid URL ({method} {path})")

    # ---- the shared path of every generation endpoint --------------------------------------

    async def _serve_generation(
        self,
        exchange: Exchange,
        provider: Provider,
        handler: Handler,
        framed: bool,
        headers: RawHeaders,
        request: Any,
        *,
        authorized: bool | None = None,
    ) -> None:
        if not (_is_authorized(provider, headers) if authorized is None else authorized):
            await self._error(exchange, provider, 401, _MISSING_KEY_MESSAGES[provider])
            return
        if not isinstance(request, dict):
            await self._error(exchange, provider, 400, "The request body is not a valid JSON object.")
            return
        try:
            plan = make_plan(exchange.raw, request, provider, framed=framed, default_latency_ms=self.default_latency_ms)
        except DirectiveError as error:
            await self._error(exchange, provider, 400, str(error))
            return
        exchange.record.reported_model = plan.model
        if plan.delay_ms > 0:
            await asyncio.sleep(plan.delay_ms / 1000)
        if plan.status is not None:
            await self._error(exchange, provider, plan.status, f"Simulated error (status {plan.status}).")
            return
        await handler(exchange, plan)

    # ---- OpenAI ------------------------------------------------------------------------------

    async def _chat_completions(self, exchange: Exchange, plan: Plan) -> None:
        completion_id, created = f"chatcmpl-sim{exchange.number}", int(time.time())
        if exchange.request.get("stream"):
            stream = openai_shapes.chat_completion_stream(
                plan, completion_id, created, include_usage=_include_usage(exchange.request)
            )
            await self._stream(exchange, "openai", stream, plan)
        else:
            completion = openai_shapes.chat_completion(plan, completion_id, created)
            await self._json(exchange, "openai", completion, completion.get("usage"))

    async def _completions(self, exchange: Exchange, plan: Plan) -> None:
        completion_id, created = f"cmpl-sim{exchange.number}", int(time.time())
        if exchange.request.get("stream"):
            stream = openai_shapes.text_completion_stream(
                plan, completion_id, created, include_usage=_include_usage(exchange.request)
            )
            await self._stream(exchange, "openai", stream, plan)
        else:
            completion = openai_shapes.text_completion(plan, completion_id, created)
            await self._json(exchange, "openai", completion, completion.get("usage"))

    async def _responses(self, exchange: Exchange, plan: Plan) -> None:
        response_id, item_id = f"resp_sim{exchange.number}", f"msg_sim{exchange.number}"
        created = int(time.time())
        if exchange.request.get("stream"):
            stream = openai_shapes.response_stream(plan, response_id, item_id, created, exchange.request)
            await self._stream(exchange, "openai", stream, plan)
        else:
            response = openai_shapes.response_object(plan, response_id, item_id, created, exchange.request)
            await self._json(exchange, "openai", response, response["usage"])

    async def _embeddings(self, exchange: Exchange, plan: Plan) -> None:
        response = openai_shapes.embeddings_response(plan, exchange.request)
        await self._json(exchange, "openai", response, response.get("usage"))

    async def _models(self, exchange: Exchange, headers: RawHeaders) -> None:
        # Both providers list models at GET /v1/models; Anthropic's SDK always sends its version.
        provider: Provider = "anthropic" if _header(headers, b"anthropic-version") is not None else "openai"
        if not _is_authorized(provider, headers):
            await self._error(exchange, provider, 401, _MISSING_KEY_MESSAGES[provider])
            return
        shapes = anthropic_shapes if provider == "anthropic" else openai_shapes
        exchange.record.status = 200
        await send_response(exchange.send, 200, shapes.MODELS_LIST_BODY, _json_headers(provider, exchange))

    # ---- Anthropic ---------------------------------------------------------------------------

    async def _messages(self, exchange: Exchange, plan: Plan) -> None:
        message_id = f"msg_sim{exchange.number}"
        if exchange.request.get("stream"):
            await self._stream(exchange, "anthropic", anthropic_shapes.message_stream(plan, message_id), plan)
        else:
            message = anthropic_shapes.message(plan, message_id)
            await self._json(exchange, "anthropic", message, message.get("usage"))

    async def _count_tokens(self, exchange: Exchange, plan: Plan) -> None:
        await self._json(exchange, "anthropic", anthropic_shapes.count_tokens(plan), None)

    # ---- Gemini --------------------------------------------------------------------------------

    async def _gemini(self, exchange: Exchange, scope: dict[str, Any], model: str, stream: bool) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        if not (_header(scope["headers"], b"x-goog-api-key") or params.get("key")):
            await self._gemini_error(
                exchange,
                403,
                "Method doesn't allow unregistered callers (callers without "
                "established identity). Please use API Key or other form of API consumer identity.",
            )
            return
        if not isinstance(exchange.record.body, dict) or not isinstance(
            exchange.request.get("contents"), (list, dict, str)
        ):
            await self._gemini_error(exchange, 400, "* GenerateContentRequest.contents: contents is not specified")
            return
        view = {**estimation_body(exchange.request), "model": model}
        try:
            plan = make_plan(exchange.raw, view, "openai", default_latency_ms=self.default_latency_ms)
        except DirectiveError as error:
            await self._gemini_error(exchange, 400, str(error))
            return
        exchange.record.reported_model = plan.model
        if plan.delay_ms > 0:
            await asyncio.sleep(plan.delay_ms / 1000)
        if plan.status is not None:
            await self._gemini_error(exchange, plan.status, f"Simulated error (status {plan.status}).")
            return
        response_id = f"sim{exchange.number}"
        headers = [JSON_CONTENT_TYPE, (b"x-goog-request-id", exchange.request_id.encode())]
        if not stream:
            answer = gemini_shapes.generate_content(plan, response_id)
            exchange.record.reported_usage = answer.get("usageMetadata")
            exchange.record.status = 200
            await send_response(exchange.send, 200, orjson.dumps(answer), headers)
        elif params.get("alt") == "sse":
            await self._stream(exchange, "gemini", gemini_shapes.event_stream(plan, response_id), plan)
        else:
            # Without alt=sse the chunks come as one JSON array.
            deltas, closing, final = gemini_shapes.stream_chunks(plan, response_id)
            exchange.record.reported_usage = final
            exchange.record.status = 200
            await send_response(exchange.send, 200, orjson.dumps([*deltas, *closing]), headers)

    async def _gemini_error(self, exchange: Exchange, status: int, message: str) -> None:
        exchange.record.status = status
        headers = [JSON_CONTENT_TYPE]
        if status == 429:
            headers.append((b"retry-after", RETRY_AFTER_SECONDS))
        await send_response(exchange.send, status, gemini_shapes.error_body(status, message), headers)

    # ---- Azure OpenAI --------------------------------------------------------------------------

    async def _azure(self, exchange: Exchange, scope: dict[str, Any], path: str) -> None:
        """Azure OpenAI: the OpenAI shapes behind the ``api-key`` header (or an Entra bearer
        token); deployment URLs need ``api-version``, the ``/openai/v1/`` form does not."""
        headers: RawHeaders = scope["headers"]
        query = scope.get("query_string", b"").decode("latin-1")
        deployment = _AZURE_DEPLOYMENT_PATH.fullmatch(path)
        other = None if deployment else _AZURE_V1_PATH.fullmatch(path)
        if deployment is None and other is None:
            await self._azure_error(exchange, 404, "Resource not found")
            return
        if not path.startswith("/openai/v1/") and "api-version=" not in query:
            await self._azure_error(exchange, 404, "Resource not found")
            return
        authorized = bool(_header(headers, b"api-key")) or _is_authorized("openai", headers)
        if not authorized:
            await self._azure_error(
                exchange,
                401,
                "Access denied due to missing subscription key. Make sure to include subscription key when making "
                "API calls to our API or use a valid api-key header.",
            )
            return
        tail = deployment.group(2) if deployment is not None else other.group(1)  # type: ignore[union-attr]
        if deployment is not None and not exchange.request.get("model"):
            exchange.request["model"] = deployment.group(1)  # the deployment answers as its model
        _, handler, framed = self._routes["/v1/" + tail]
        await self._serve_generation(exchange, "openai", handler, framed, headers, exchange.request, authorized=True)

    async def _azure_error(self, exchange: Exchange, status: int, message: str) -> None:
        exchange.record.status = status
        body = orjson.dumps({"error": {"code": str(status), "message": message}})
        await send_response(exchange.send, status, body, [JSON_CONTENT_TYPE])

    # ---- answering ---------------------------------------------------------------------------

    async def _json(
        self, exchange: Exchange, provider: Provider, payload: dict[str, Any], usage: dict[str, Any] | None
    ) -> None:
        exchange.record.reported_usage = usage
        exchange.record.status = 200
        await send_response(exchange.send, 200, orjson.dumps(payload), _json_headers(provider, exchange))

    async def _stream(self, exchange: Exchange, provider: Provider, stream: EventStream, plan: Plan) -> None:
        send, record = exchange.send, exchange.record
        headers = [*EVENT_STREAM_HEADERS, _request_id_header(provider, exchange)]
        record.status = 200
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pause = plan.chunk_delay_ms / 1000
        events_sent = 0

        async def emit(event: bytes, *, last: bool = False) -> None:
            nonlocal events_sent
            if pause and events_sent:
                await asyncio.sleep(pause)
            events_sent += 1
            await send({"type": "http.response.body", "body": event, "more_body": not last})

        # The log shows the usage a client could hold, from the moment the bytes carrying it go out.
        if stream.opening_usage is not None:
            record.reported_usage = stream.opening_usage
        for event in itertools.chain(stream.opening, stream.deltas):
            await emit(event)
        if plan.break_after is not None:
            await break_connection(send, exchange.receive)
            return
        if plan.end_after is not None:  # a clean end, but before the provider said it was done
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        record.reported_usage = stream.final_usage
        *closing, final = stream.closing
        for event in closing:
            await emit(event)
        await emit(final, last=True)

    async def _error(self, exchange: Exchange, provider: Provider, status: int, message: str) -> None:
        exchange.record.status = status
        headers = _json_headers(provider, exchange)
        if status == 429:
            headers.append((b"retry-after", RETRY_AFTER_SECONDS))
        if provider == "anthropic":
            body = anthropic_shapes.error_body(status, message, exchange.request_id)
        else:
            body = openai_shapes.error_body(status, message)
        await send_response(exchange.send, status, body, headers)

    # ---- out-of-process access to the log ----------------------------------------------------

    async def _control(self, method: str, path: str, send: Send) -> None:
        if path == LOG_PATH and method == "GET":
            await send_response(send, 200, self.log.to_json(), [JSON_CONTENT_TYPE])
        elif path == RESET_PATH and method == "POST":
            cleared = self.log.clear()
            await send_response(send, 200, orjson.dumps({"cleared": cleared}), [JSON_CONTENT_TYPE])
        else:
            body = openai_shapes.error_body(404, f"Invalid URL ({method} {path})")
            await send_response(send, 404, body, [JSON_CONTENT_TYPE])


def create_simulator_app(
    log: SimulatorLog | None = None, *, default_latency_ms: float = 0.0, admin: AdminApi | None = None
) -> SimulatorApp:
    """A new simulator ASGI app with its own log (``app.log``) and an empty admin dataset
    (``app.admin.dataset``) unless they are given."""
    return SimulatorApp(log, default_latency_ms=default_latency_ms, admin=admin)


_MISSING_KEY_MESSAGES: dict[Provider, str] = {
    "openai": "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    "anthropic": "x-api-key header or Authorization: Bearer is required",
}


def _header(headers: RawHeaders, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower-case); a scan beats decoding them all into a dict."""
    for key, value in headers:
        if key == name or key.lower() == name:
            return value
    return None


def _is_authorized(provider: Provider, headers: RawHeaders) -> bool:
    # Anthropic takes x-api-key, and also a bearer token: the anthropic SDK 2.x sends its api_key
    # as "Authorization: Bearer ...", and OAuth tokens come that way too.
    if provider == "anthropic" and _header(headers, b"x-api-key"):
        return True
    authorization = _header(headers, b"authorization") or b""
    return authorization[:7].lower() == b"bearer " and bool(authorization[7:].strip())


def _include_usage(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _request_id_header(provider: Provider, exchange: Exchange) -> tuple[bytes, bytes]:
    name = b"request-id" if provider == "anthropic" else b"x-request-id"
    return name, exchange.request_id.encode()


def _json_headers(provider: Provider, exchange: Exchange) -> Headers:
    return [JSON_CONTENT_TYPE, _request_id_header(provider, exchange)]


async def _run_lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up; answering lets servers run with lifespan "on" as well as "off".
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

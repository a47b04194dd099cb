"""The providers' batch APIs, passed through with the gateway key: OpenAI ``/v1/batches`` with
``/v1/files`` (input upload, output content), Anthropic ``/v1/messages/batches`` (with results).

Creating a batch records who created it (``batches`` table); fetching its results (an OpenAI
output file's content, Anthropic's ``…/results``) records each result as an event of the
creator's, at the batch price (``spendgate.batches``), while the results stream on to the
client unchanged. Anthropic's batch objects name a ``results_url`` on the provider's host,
which the SDK follows with its own key: the gateway rewrites it to itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from spendgate.attribution import Attribution
from spendgate.batches import JSONLines, anthropic_result, openai_result, result_event
from spendgate.budgets.enforcer import Refusal
from spendgate.gateway.asgi import Receive, Scope, Send, read_body, request_headers, send_error, send_response
from spendgate.gateway.errors import (
    ANTHROPIC,
    OPENAI,
    GatewayError,
    enforcement_unavailable,
    invalid_request,
    method_not_allowed,
    refusal_error,
    upstream_connect_timeout,
    upstream_timeout,
    upstream_unreachable,
)
from spendgate.gateway.upstream import Upstream
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.store.batches import BatchRecord

log = logging.getLogger("spendgate.batches")

_ID = r"[A-Za-z0-9_.-]{1,128}"
# (pattern, family, action, methods): action says what the gateway does besides relaying.
_PATHS = (
    (re.compile(r"/v1/files"), OPENAI, "plain", ("GET", "POST")),
    (re.compile(rf"/v1/files/({_ID})"), OPENAI, "plain", ("GET", "DELETE")),
    (re.compile(rf"/v1/files/({_ID})/content"), OPENAI, "file_content", ("GET",)),
    (re.compile(r"/v1/batches"), OPENAI, "create_or_list", ("GET", "POST")),
    (re.compile(rf"/v1/batches/({_ID})"), OPENAI, "objects", ("GET",)),
    (re.compile(rf"/v1/batches/({_ID})/cancel"), OPENAI, "objects", ("POST",)),
    (re.compile(r"/v1/messages/batches"), ANTHROPIC, "create_or_list", ("GET", "POST")),
    (re.compile(rf"/v1/messages/batches/({_ID})"), ANTHROPIC, "objects", ("GET", "DELETE")),
    (re.compile(rf"/v1/messages/batches/({_ID})/cancel"), ANTHROPIC, "objects", ("POST",)),
    (re.compile(rf"/v1/messages/batches/({_ID})/results"), ANTHROPIC, "results", ("GET",)),
)
# What each family's batch requests call, as recorded on their events.
BATCH_ENDPOINTS = {OPENAI: "/v1/batches", ANTHROPIC: "/v1/messages/batches"}


@dataclass(frozen=True, slots=True)
class BatchCall:
    family: str
    action: str
    methods: tuple[str, ...]
    object_id: str | None  # the batch or file id in the path


def match_batch_path(path: str) -> BatchCall | None:
    for pattern, family, action, methods in _PATHS:
        found = pattern.fullmatch(path)
        if found is not None:
            return BatchCall(family, action, methods, found.group(1) if found.groups() else None)
    return None


class BatchDoor:
    """Serves the batch paths with the gateway's authentication, attribution, upstreams and writer."""

    def __init__(self, gateway: Any, store: Any, recorder: Any) -> None:
        self.gateway = gateway
        self.store = store
        # The doors' one recorder (ingest/service.py): stored through the writer, and the new
        # events counted against live budgets, as ingested spend is.
        self.recorder = recorder

    async def handle(self, scope: Scope, receive: Receive, send: Send, call: BatchCall) -> None:
        gateway, method, family = self.gateway, scope["method"], call.family
        try:
            if method not in call.methods:
                raise method_not_allowed(method, scope["path"])
            headers = request_headers(scope)
            key = await gateway.authenticate(headers)
            raw = await read_body(receive, headers, gateway.max_body_bytes) if method == "POST" else b""
            upstream: Upstream = gateway.upstreams.anthropic if family == ANTHROPIC else gateway.upstreams.openai
            gateway.upstreams.check_credentials(upstream)
            owner = None
            if call.action == "create_or_list" and method == "POST":
                body = _json_object(raw)
                owner = gateway.attribute(key, headers, body)
                await self._admit(owner)
        except GatewayError as error:
            await send_error(send, error, family)
            return
        query = scope.get("query_string", b"")
        url = upstream.url_for(scope["path"]) + (f"?{query.decode('latin-1')}" if query else "")
        forwarded = _forwarded_headers(upstream, headers)
        now = gateway.clock()
        assert gateway.session is not None
        try:
            async with gateway.session.request(method, url, data=raw or None, headers=forwarded) as response:
                if response.status < 400 and call.action in ("results", "file_content"):
                    await self._relay_results(send, call, response)
                    return
                payload = await response.read()
                if response.status < 400:
                    payload = await self._after(call, payload, owner, now, scope, headers, raw)
                await send_response(send, response.status, _response_headers(response), payload)
        except aiohttp.ConnectionTimeoutError:
            await send_error(send, upstream_connect_timeout(upstream.name, gateway.connect_timeout), family)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await send_error(send, upstream_timeout(upstream.name, gateway.upstream_timeout), family)
        except aiohttp.ClientError as exc:
            await send_error(send, upstream_unreachable(upstream.name, str(exc)), family)

    async def _admit(self, owner: Attribution) -> None:
        """A batch is held to its creator's policies, rate limits and blocking budgets like a
        request: refused when one is already spent (what the batch will cost is not known
        before its results, so nothing is reserved for it)."""
        enforcer = self.gateway.enforcer
        if enforcer is None:
            return
        now = self.gateway.clock()
        try:
            admission = await enforcer.admit(self.gateway.new_event_id(now), owner, Decimal(0), 0, now)
        except Refusal as refusal:
            raise refusal_error(refusal) from refusal
        except Exception as exc:
            log.exception("could not check budgets and rate limits for a batch")
            raise enforcement_unavailable(f"{type(exc).__name__}: {exc}") from exc
        if admission is not None:
            await enforcer.release(admission)

    # --- what the answers teach -----------------------------------------------------------------
    async def _after(
        self,
        call: BatchCall,
        payload: bytes,
        owner: Attribution | None,
        now: Any,
        scope: Scope,
        headers: dict[str, str],
        raw: bytes,
    ) -> bytes:
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload
        if not isinstance(answer, dict):
            return payload
        objects = answer["data"] if isinstance(answer.get("data"), list) else [answer]
        objects = [o for o in objects if isinstance(o, dict)]
        provider = call.family
        if owner is not None and isinstance(answer.get("id"), str):
            endpoint = BATCH_ENDPOINTS[call.family]
            record = BatchRecord(provider, answer["id"], now, endpoint, owner)
            try:
                await asyncio.to_thread(self.store.remember_batch, record)
            except Exception:
                # The batch exists upstream: failing the answer would make the client create it
                # again. Its results will pass through unrecorded; say so loudly.
                log.exception("could not record the creator of %s batch %s", provider, answer["id"])
        if call.family == OPENAI:
            for batch in objects:
                files = (batch.get("output_file_id"), batch.get("error_file_id"))
                if isinstance(batch.get("id"), str) and any(isinstance(f, str) for f in files):
                    await asyncio.to_thread(
                        self.store.note_batch_files,
                        provider,
                        batch["id"],
                        *(f if isinstance(f, str) else None for f in files),
                    )
            return payload
        # Anthropic: results_url must lead back here, or the SDK takes the gateway key upstream.
        origin = f"{scope.get('scheme', 'http')}://{headers.get('host', '127.0.0.1')}"
        changed = False
        for batch in objects:
            if isinstance(batch.get("id"), str) and isinstance(batch.get("results_url"), str):
                batch["results_url"] = f"{origin}/v1/messages/batches/{batch['id']}/results"
                changed = True
        return orjson.dumps(answer) if changed else payload

    async def _relay_results(self, send: Send, call: BatchCall, response: aiohttp.ClientResponse) -> None:
        """Stream the results to the client, recording each result as it passes."""
        provider, gateway = call.family, self.gateway
        assert call.object_id is not None
        find = self.store.batch if provider == ANTHROPIC else self.store.batch_of_file
        batch: BatchRecord | None = await asyncio.to_thread(find, provider, call.object_id)
        if batch is None:
            log.info(
                "%s results of %s pass through unrecorded: not a batch created through spendgate",
                provider,
                call.object_id,
            )
        parse = anthropic_result if provider == ANTHROPIC else openai_result
        lines = JSONLines(gateway.max_stream_event_bytes)
        await send({"type": "http.response.start", "status": response.status, "headers": _response_headers(response)})

        # Keyed by event id: a result repeated within one fetch is one event.
        results: dict[str, UsageEvent] = {}

        def record(parsed: list[Any]) -> None:
            if batch is None:
                return
            for line in parsed:
                result = parse(line)
                if result is None:
                    continue
                event = result_event(
                    result,
                    provider=provider,
                    batch_id=batch.batch_id,
                    created_at=batch.created_at,
                    endpoint=batch.endpoint or BATCH_ENDPOINTS[provider],
                    owner=batch.owner,
                    prices=gateway.prices,
                )
                results[event.id] = event

        try:
            await self._relay(send, call, response, lines, record)
        finally:
            # What passed is recorded even if the client left mid-way (the ids make a later
            # fetch of the same results change nothing).
            if results:
                try:
                    await self.recorder.record(list(results.values()))
                except Exception:
                    # Spooled before this: the writer stores them; only live counters wait for
                    # their next load from the ledger.
                    log.exception("batch results of %s: could not confirm their recording", call.object_id)

    async def _relay(
        self,
        send: Send,
        call: BatchCall,
        response: aiohttp.ClientResponse,
        lines: JSONLines,
        record: Callable[[list[Any]], None],
    ) -> None:
        try:
            async for chunk in response.content.iter_any():
                record(lines.feed(chunk))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            record(lines.close())
        except (TimeoutError, aiohttp.ClientError) as exc:
            # What arrived is recorded; a second fetch records the rest (ids make it idempotent).
            log.info("batch results of %s cut short: %r", call.object_id, exc)
        if lines.skipped:
            log.warning(
                "%d result line(s) of %s could not be read and were not recorded", lines.skipped, call.object_id
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    return body


_PASSED = ("anthropic-version", "anthropic-beta", "openai-beta", "accept", "idempotency-key", "content-type")
_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"content-encoding"})


def _forwarded_headers(upstream: Upstream, client: dict[str, str]) -> dict[str, str]:
    # The client's content-type goes on: a file upload is multipart/form-data with its boundary.
    headers = {"accept-encoding": "identity"}
    headers.update({name: client[name] for name in _PASSED if name in client})
    headers.update(upstream.auth_headers)
    return headers


def _response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in response.raw_headers if name.lower() not in _HOP]

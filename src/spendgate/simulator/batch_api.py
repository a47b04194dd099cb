"""Fakes of the batch APIs, in the providers' published formats.

OpenAI: ``POST /v1/files`` (multipart: ``purpose``, ``file``), ``GET /v1/files[/{id}[/content]]``,
``DELETE /v1/files/{id}``, ``POST|GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``. The input file holds JSON lines ``{"custom_id", "method",
"url", "body"}``; the output file ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}`` lines, and failed requests go to the error file.

Anthropic: ``POST|GET /v1/messages/batches``, ``GET|DELETE /v1/messages/batches/{id}``,
``POST …/cancel``, ``GET …/results`` (JSON lines ``{"custom_id", "result": {"type":
"succeeded", "message"}}``); a batch names its ``results_url`` once ended.

A batch is created ``validating`` (OpenAI) or ``in_progress`` (Anthropic) and has run by the
next time it is retrieved: each request is answered then, by the same plans and shapes as the
synchronous endpoints (``[[sim …]]`` directives work), reported at the ``batch`` tier.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from spendgate.simulator import anthropic_shapes, openai_shapes
from spendgate.simulator.asgi_io import JSON_CONTENT_TYPE, RawHeaders, Send, send_response
from spendgate.simulator.plan import DirectiveError, make_plan

_ID = r"([A-Za-z0-9_.-]+)"
_OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
JSONL_HEADERS = [(b"content-type", b"application/binary")]


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class FakeBatch:
    id: str
    provider: str
    created_at: int
    requests: list[dict[str, Any]]
    endpoint: str = ""
    input_file_id: str = ""
    metadata: dict[str, Any] | None = None
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended_at: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    results: bytes = b""  # Anthropic's results, once ended


class BatchApi:
    """The batch endpoints of both providers, over one in-memory state."""

    def __init__(self) -> None:
        self.files: dict[str, FakeFile] = {}
        self.batches: dict[str, FakeBatch] = {}
        self._numbers = itertools.count(1)

    @staticmethod
    def serves(path: str) -> bool:
        return path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches"))

    async def __call__(self, scope: dict[str, Any], raw: bytes, send: Send) -> int:
        """Answer one request; returns the status answered."""
        method, path, headers = scope["method"], scope["path"], scope["headers"]
        anthropic = path.startswith("/v1/messages/")
        if not _authorized(headers, anthropic):
            return await _error(send, anthropic, 401, "missing or invalid API key")
        if anthropic:
            return await self._anthropic(method, path, raw, headers, send)
        return await self._openai(method, path, raw, headers, send)

    # --- OpenAI -------------------------------------------------------------------------------
    async def _openai(self, method: str, path: str, raw: bytes, headers: RawHeaders, send: Send) -> int:
        if path == "/v1/files" and method == "POST":
            return await self._upload(raw, headers, send)
        if path == "/v1/files" and method == "GET":
            return await _json(
                send, {"object": "list", "data": [f.as_json() for f in self.files.values()], "has_more": False}
            )
        if (found := re.fullmatch(rf"/v1/files/{_ID}(/content)?", path)) is not None:
            file = self.files.get(found.group(1))
            if file is None:
                return await _error(send, False, 404, f"No such File object: {found.group(1)}")
            if found.group(2) and method == "GET":
                await send_response(send, 200, file.content, JSONL_HEADERS)
                return 200
            if method == "DELETE":
                del self.files[file.id]
                return await _json(send, {"id": file.id, "object": "file", "deleted": True})
            return await _json(send, file.as_json())
        if path == "/v1/batches" and method == "POST":
            return await self._create_openai(raw, send)
        if path == "/v1/batches" and method == "GET":
            data = [self._openai_batch(b) for b in self.batches.values() if b.provider == "openai"]
            return await _json(send, {"object": "list", "data": data, "has_more": False})
        if (found := re.fullmatch(rf"/v1/batches/{_ID}(/cancel)?", path)) is not None:
            batch = self.batches.get(found.group(1))
            if batch is None or batch.provider != "openai":
                return await _error(send, False, 404, f"No batch found with id '{found.group(1)}'.")
            if found.group(2):
                if batch.status in ("validating", "in_progress"):
                    batch.status = "cancelled"
            else:
                self._run_openai(batch)
            return await _json(send, self._openai_batch(batch))
        return await _error(send, False, 404, f"Invalid URL ({method} {path})")

    async def _upload(self, raw: bytes, headers: RawHeaders, send: Send) -> int:
        fields = _multipart(raw, _header(headers, b"content-type") or b"")
        if fields is None or "file" not in fields or "purpose" not in fields:
            return await _error(send, False, 400, "a multipart body with 'file' and 'purpose' is required")
        (filename, content), (_, purpose) = fields["file"], fields["purpose"]
        file = FakeFile(f"file-sim{next(self._numbers)}", filename or "upload", purpose.decode(), content, _now())
        self.files[file.id] = file
        return await _json(send, file.as_json())

    async def _create_openai(self, raw: bytes, send: Send) -> int:
        request = _loads(raw)
        if not isinstance(request, dict):
            return await _error(send, False, 400, "The request body is not a valid JSON object.")
        file = self.files.get(request.get("input_file_id", ""))
        if file is None:
            return await _error(send, False, 400, f"Invalid 'input_file_id': {request.get('input_file_id')!r}.")
        if request.get("endpoint") not in _OPENAI_ENDPOINTS or request.get("completion_window") != "24h":
            return await _error(send, False, 400, "'endpoint' and 'completion_window' (24h) are required")
        lines = [line for line in (_loads(row) for row in file.content.splitlines() if row.strip())]
        if not all(isinstance(line, dict) and isinstance(line.get("body"), dict) for line in lines):
            return await _error(
                send, False, 400, "the input file must hold JSON lines with custom_id, method, url, body"
            )
        batch = FakeBatch(
            f"batch_sim{next(self._numbers)}",
            "openai",
            _now(),
            lines,
            endpoint=request["endpoint"],
            input_file_id=file.id,
            metadata=request.get("metadata"),
        )
        self.batches[batch.id] = batch
        return await _json(send, self._openai_batch(batch))

    def _run_openai(self, batch: FakeBatch) -> None:
        if batch.status != "validating":
            return
        output: list[bytes] = []
        errors: list[bytes] = []
        for number, line in enumerate(batch.requests):
            body = line["body"]
            request_id = f"req_simbatch{batch.id}_{number}"
            try:
                plan = make_plan(orjson.dumps(body), body, "openai", framed=batch.endpoint != "/v1/embeddings")
            except DirectiveError as error:
                plan, problem = None, str(error)
            if plan is None or plan.status is not None:
                status = plan.status if plan is not None else 400
                message = f"Simulated error (status {status})." if plan is not None else problem
                response = {"status_code": status, "request_id": request_id, "body": {"error": {"message": message}}}
                errors.append(
                    orjson.dumps(
                        {
                            "id": f"batch_req_{number}",
                            "custom_id": line.get("custom_id"),
                            "response": response,
                            "error": None,
                        }
                    )
                )
                continue
            plan.service_tier = "default"
            answer = _openai_answer(batch.endpoint, plan, body, f"{batch.id}-{number}")
            response = {"status_code": 200, "request_id": request_id, "body": answer}
            output.append(
                orjson.dumps(
                    {
                        "id": f"batch_req_{number}",
                        "custom_id": line.get("custom_id"),
                        "response": response,
                        "error": None,
                    }
                )
            )
        now = _now()
        if output:
            batch.output_file_id = self._store_file(f"{batch.id}_output.jsonl", b"\n".join(output) + b"\n")
        if errors:
            batch.error_file_id = self._store_file(f"{batch.id}_error.jsonl", b"\n".join(errors) + b"\n")
        batch.status, batch.ended_at = "completed", now
        batch.counts = {"total": len(batch.requests), "completed": len(output), "failed": len(errors)}

    def _store_file(self, filename: str, content: bytes) -> str:
        file = FakeFile(f"file-sim{next(self._numbers)}", filename, "batch_output", content, _now())
        self.files[file.id] = file
        return file.id

    def _openai_batch(self, batch: FakeBatch) -> dict[str, Any]:
        ended = batch.ended_at
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created_at,
            "in_progress_at": ended,
            "expires_at": batch.created_at + 86400,
            "finalizing_at": ended,
            "completed_at": ended,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": batch.counts or {"total": len(batch.requests), "completed": 0, "failed": 0},
            "metadata": batch.metadata,
        }

    # --- Anthropic ----------------------------------------------------------------------------
    async def _anthropic(self, method: str, path: str, raw: bytes, headers: RawHeaders, send: Send) -> int:
        origin = "http://" + (_header(headers, b"host") or b"127.0.0.1").decode("latin-1")
        if path == "/v1/messages/batches" and method == "POST":
            request = _loads(raw)
            requests = request.get("requests") if isinstance(request, dict) else None
            if (
                not isinstance(requests, list)
                or not requests
                or not all(
                    isinstance(r, dict) and isinstance(r.get("custom_id"), str) and isinstance(r.get("params"), dict)
                    for r in requests
                )
            ):
                return await _error(send, True, 400, "requests: each needs a custom_id and params")
            batch = FakeBatch(f"msgbatch_sim{next(self._numbers)}", "anthropic", _now(), requests, status="in_progress")
            self.batches[batch.id] = batch
            return await _json(send, self._anthropic_batch(batch, origin))
        if path == "/v1/messages/batches" and method == "GET":
            data = [self._anthropic_batch(b, origin) for b in self.batches.values() if b.provider == "anthropic"]
            return await _json(send, {"data": data, "has_more": False, "first_id": None, "last_id": None})
        found = re.fullmatch(rf"/v1/messages/batches/{_ID}(/cancel|/results)?", path)
        batch = self.batches.get(found.group(1)) if found is not None else None
        if found is None or batch is None or batch.provider != "anthropic":
            return await _error(send, True, 404, "batch not found")
        tail = found.group(2)
        if tail == "/results":
            if batch.status != "ended":
                return await _error(send, True, 404, "results are not available until the batch has ended")
            await send_response(send, 200, batch.results, JSONL_HEADERS)
            return 200
        if tail == "/cancel":
            batch.status = "canceling" if batch.status == "in_progress" else batch.status
        elif method == "DELETE":
            del self.batches[batch.id]
            return await _json(send, {"id": batch.id, "type": "message_batch_deleted"})
        else:
            self._run_anthropic(batch)
        return await _json(send, self._anthropic_batch(batch, origin))

    def _run_anthropic(self, batch: FakeBatch) -> None:
        if batch.status != "in_progress":
            return
        lines, counts = [], {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for number, item in enumerate(batch.requests):
            params = item["params"]
            try:
                plan = make_plan(orjson.dumps(params), params, "anthropic")
            except DirectiveError as error:
                plan, problem = None, str(error)
            if plan is None or plan.status is not None:
                message = problem if plan is None else f"Simulated error (status {plan.status})."
                error = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
                lines.append({"custom_id": item["custom_id"], "result": {"type": "errored", "error": error}})
                counts["errored"] += 1
                continue
            plan.service_tier = "batch"
            message = anthropic_shapes.message(plan, f"msg_simbatch{batch.id}_{number}")
            lines.append({"custom_id": item["custom_id"], "result": {"type": "succeeded", "message": message}})
            counts["succeeded"] += 1
        batch.results = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        batch.status, batch.ended_at, batch.counts = "ended", _now(), counts

    def _anthropic_batch(self, batch: FakeBatch, origin: str) -> dict[str, Any]:
        ended = batch.status == "ended"
        counts = batch.counts or {
            "processing": len(batch.requests),
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "ended_at": _iso(batch.ended_at) if ended else None,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + 86400),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _openai_answer(endpoint: str, plan: Any, body: dict[str, Any], suffix: str) -> dict[str, Any]:
    created = _now()
    if endpoint == "/v1/embeddings":
        return openai_shapes.embeddings_response(plan, body)
    if endpoint == "/v1/responses":
        return openai_shapes.response_object(plan, f"resp_{suffix}", f"msg_{suffix}", created, body)
    if endpoint == "/v1/completions":
        return openai_shapes.text_completion(plan, f"cmpl-{suffix}", created)
    return openai_shapes.chat_completion(plan, f"chatcmpl-{suffix}", created)


def _multipart(raw: bytes, content_type: bytes) -> dict[str, tuple[str | None, bytes]] | None:
    """The fields of a multipart/form-data body: name -> (filename, content)."""
    found = re.search(rb'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith(b"multipart/form-data") or found is None:
        return None
    delimiter = b"--" + found.group(1)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name is not None:
            fields[name.group(1).decode()] = (
                filename.group(1).decode() if filename else None,
                content[:-2] if content.endswith(b"\r\n") else content,
            )
    return fields


def _authorized(headers: RawHeaders, anthropic: bool) -> bool:
    if anthropic and _header(headers, b"x-api-key"):
        return True
    authorization = _header(headers, b"authorization") or b""
    return authorization[:7].lower() == b"bearer " and bool(authorization[7:].strip())


def _header(headers: RawHeaders, name: bytes) -> bytes | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _now() -> int:
    return int(time.time())


def _iso(seconds: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _json(send: Send, payload: Any) -> int:
    await send_response(send, 200, orjson.dumps(payload), [JSON_CONTENT_TYPE])
    return 200


async def _error(send: Send, anthropic: bool, status: int, message: str) -> int:
    body = (
        anthropic_shapes.error_body(status, message, "req_simbatch")
        if anthropic
        else openai_shapes.error_body(status, message)
    )
    await send_response(send, status, body, [JSON_CONTENT_TYPE])
    return status

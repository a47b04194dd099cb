"""Gemini wire shapes: ``generateContent``, ``streamGenerateContent`` (SSE with ``?alt=sse``, else
one JSON array) and errors, as generativelanguage.googleapis.com sends them.

The plan's counts are in OpenAI's convention (input includes cached, output includes reasoning);
Gemini reports ``candidatesTokenCount`` without the thinking tokens, which come apart as
``thoughtsTokenCount``, and leaves out the counts that are zero.
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.simulator.plan import Plan
from spendgate.simulator.sse import EventStream

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def usage_metadata(plan: Plan, *, final: bool = True) -> dict[str, Any]:
    thoughts = plan.reasoning_tokens
    candidates = max(plan.output_tokens - thoughts, 0) if final else 0
    meta: dict[str, Any] = {"promptTokenCount": plan.input_tokens}
    if final:
        meta["candidatesTokenCount"] = candidates
    meta["totalTokenCount"] = plan.input_tokens + (candidates + thoughts if final else 0)
    if plan.cached_tokens:
        meta["cachedContentTokenCount"] = plan.cached_tokens
    if thoughts and final:
        meta["thoughtsTokenCount"] = thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.input_tokens}]
    return meta


def _chunk(plan: Plan, response_id: str, text: str, finish: str | None, usage: dict[str, Any] | None) -> dict:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        chunk["usageMetadata"] = usage
    chunk["modelVersion"] = plan.model
    chunk["responseId"] = response_id
    return chunk


def generate_content(plan: Plan, response_id: str) -> dict[str, Any]:
    return _chunk(plan, response_id, plan.text, "STOP", None if plan.no_usage else usage_metadata(plan))


def stream_chunks(plan: Plan, response_id: str) -> tuple[list[dict], list[dict], dict[str, Any] | None]:
    """(text chunks, closing chunks, final usage): every chunk tells the usage so far (the
    prompt), the last one the whole of it with the finish reason."""
    running = None if plan.no_usage else usage_metadata(plan, final=False)
    final = None if plan.no_usage else usage_metadata(plan)
    deltas = [_chunk(plan, response_id, text, None, running) for text in plan.text_deltas]
    return deltas, [_chunk(plan, response_id, "", "STOP", final)], final


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"


def event_stream(plan: Plan, response_id: str) -> EventStream:
    deltas, closing, final = stream_chunks(plan, response_id)
    return EventStream(
        opening=[],
        deltas=[_sse(chunk) for chunk in deltas],
        closing=[_sse(chunk) for chunk in closing],
        final_usage=final,
    )


def error_body(status: int, message: str) -> bytes:
    grpc = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {"code": status, "message": message, "status": grpc}})

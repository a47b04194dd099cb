"""Anthropic wire shapes: messages (plain and streamed), token counting, models, errors.

Anthropic's usage convention: ``input_tokens`` EXCLUDES cache reads and cache writes, which are
reported beside it. A stream reports input and cache counts once, in ``message_start``, and the
FINAL cumulative ``output_tokens`` in ``message_delta`` (``message_start`` says 1).
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.simulator.plan import Plan
from spendgate.simulator.sse import EventStream, named_event

STREAM_START_OUTPUT_TOKENS = 1
# Models the anthropic SDK does not flag as deprecated (it warns, and tests run warnings-as-errors).
MODEL_INFOS = (
    ("claude-opus-4-5-20251101", "Claude Opus 4.5"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
)
MODELS_CREATED_AT = "2025-01-01T00:00:00Z"

# The "type" of Anthropic's error object for each status it documents.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def message_usage(plan: Plan, *, output_tokens: int | None = None) -> dict[str, Any]:
    cache_write_5m = plan.cache_write_tokens - plan.cache_write_1h_tokens
    usage: dict[str, Any] = {
        "input_tokens": plan.input_tokens,
        "output_tokens": plan.output_tokens if output_tokens is None else output_tokens,
        "cache_creation_input_tokens": plan.cache_write_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write_5m,
            "ephemeral_1h_input_tokens": plan.cache_write_1h_tokens,
        },
    }
    if plan.service_tier is not None:
        usage["service_tier"] = plan.service_tier
    return usage


def message(plan: Plan, message_id: str) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [{"type": "text", "text": plan.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if not plan.no_usage:
        reply["usage"] = message_usage(plan)
    return reply


def message_stream(plan: Plan, message_id: str) -> EventStream:
    start_usage = None if plan.no_usage else message_usage(plan, output_tokens=STREAM_START_OUTPUT_TOKENS)
    started: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if start_usage is not None:
        started["usage"] = start_usage
    message_delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    if not plan.no_usage:
        message_delta["usage"] = {"output_tokens": plan.output_tokens}

    def event(payload: dict[str, Any]) -> bytes:
        return named_event(payload["type"], payload)

    return EventStream(
        opening=[
            event({"type": "message_start", "message": started}),
            event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            event({"type": "ping"}),
        ],
        deltas=[
            event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})
            for text in plan.text_deltas
        ],
        closing=[
            event({"type": "content_block_stop", "index": 0}),
            event(message_delta),
            event({"type": "message_stop"}),
        ],
        # What a client holds once message_delta has overwritten message_start's output_tokens.
        final_usage=None if plan.no_usage else message_usage(plan),
        opening_usage=start_usage,
    )


def count_tokens(plan: Plan) -> dict[str, Any]:
    return {"input_tokens": plan.input_tokens}


MODELS_LIST_BODY = orjson.dumps(
    {
        "data": [
            {"type": "model", "id": model_id, "display_name": name, "created_at": MODELS_CREATED_AT}
            for model_id, name in MODEL_INFOS
        ],
        "has_more": False,
        "first_id": MODEL_INFOS[0][0],
        "last_id": MODEL_INFOS[-1][0],
    }
)


def error_body(status: int, message: str, request_id: str) -> bytes:
    error_type = ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id})

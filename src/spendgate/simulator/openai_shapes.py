"""OpenAI wire shapes: chat completions, legacy completions, Responses, embeddings, models, errors.

Field sets follow what api.openai.com sends, so the official SDK (and the gateway's parsers)
see the same objects they would see in production.
"""

from __future__ import annotations

import base64
import struct
from functools import lru_cache
from typing import Any

import orjson

from spendgate.simulator.plan import Plan
from spendgate.simulator.sse import DONE_EVENT, EventStream, data_event, named_event

SYSTEM_FINGERPRINT = "fp_simulator"
DEFAULT_EMBEDDING_DIMENSIONS = 16
MODEL_IDS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
MODELS_CREATED = 1_700_000_000


# ---- usage objects ---------------------------------------------------------------------------


def chat_usage(plan: Plan) -> dict[str, Any]:
    """Usage of chat and legacy completions: prompt_tokens include cached, completion_tokens
    include reasoning."""
    return {
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(plan: Plan) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens": plan.output_tokens,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": plan.input_tokens + plan.output_tokens,
    }


def embeddings_usage(plan: Plan) -> dict[str, Any]:
    return {"prompt_tokens": plan.input_tokens, "total_tokens": plan.input_tokens}


# ---- chat completions ------------------------------------------------------------------------


def chat_completion(plan: Plan, completion_id: str, created: int) -> dict[str, Any]:
    completion: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": plan.model,
        "choices": [
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": plan.text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
            for index in range(plan.choices)
        ],
        "service_tier": plan.service_tier,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    _omit_absent_tier(completion)
    if not plan.no_usage:
        completion["usage"] = chat_usage(plan)
    return completion


def chat_completion_stream(plan: Plan, completion_id: str, created: int, *, include_usage: bool) -> EventStream:
    """Chunks as OpenAI streams them. With ``include_usage`` every chunk carries ``"usage": null``
    and one extra last chunk, with no choices, carries the usage; without it there is no usage.
    Only the first choice is streamed (the usage counts every answer generated)."""
    include_usage = include_usage and not plan.no_usage

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": plan.model,
            "service_tier": plan.service_tier,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        _omit_absent_tier(payload)
        if include_usage:
            payload["usage"] = None
        return data_event(payload)

    closing = [chunk({}, "stop")]
    usage = chat_usage(plan) if include_usage else None
    if usage is not None:
        closing.append(
            _usage_chunk(completion_id, "chat.completion.chunk", created, plan.model, usage, plan.service_tier)
        )
    closing.append(DONE_EVENT)
    return EventStream(
        opening=[chunk({"role": "assistant", "content": "", "refusal": None}, None)],
        deltas=[chunk({"content": text}, None) for text in plan.text_deltas],
        closing=closing,
        final_usage=usage,
    )


def _omit_absent_tier(payload: dict[str, Any]) -> None:
    """A simulated provider that does not report a tier leaves the field out altogether."""
    if payload.get("service_tier") is None:
        payload.pop("service_tier", None)


def _usage_chunk(
    completion_id: str, object_name: str, created: int, model: str, usage: dict, service_tier: str | None = None
) -> bytes:
    payload = {
        "id": completion_id,
        "object": object_name,
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [],
        "usage": usage,
    }
    if object_name == "chat.completion.chunk" and service_tier is not None:
        payload["service_tier"] = service_tier
    return data_event(payload)


# ---- legacy completions ----------------------------------------------------------------------


def text_completion(plan: Plan, completion_id: str, created: int) -> dict[str, Any]:
    completion: dict[str, Any] = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": plan.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {"text": plan.text, "index": index, "logprobs": None, "finish_reason": "stop"}
            for index in range(plan.choices)
        ],
    }
    if not plan.no_usage:
        completion["usage"] = chat_usage(plan)
    return completion


def text_completion_stream(plan: Plan, completion_id: str, created: int, *, include_usage: bool) -> EventStream:
    include_usage = include_usage and not plan.no_usage

    def chunk(text: str, finish_reason: str | None) -> bytes:
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": plan.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            payload["usage"] = None
        return data_event(payload)

    closing = [chunk("", "stop")]
    usage = chat_usage(plan) if include_usage else None
    if usage is not None:
        closing.append(_usage_chunk(completion_id, "text_completion", created, plan.model, usage))
    closing.append(DONE_EVENT)
    return EventStream(
        opening=[],
        deltas=[chunk(text, None) for text in plan.text_deltas],
        closing=closing,
        final_usage=usage,
    )


# ---- Responses API ---------------------------------------------------------------------------


def _output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str | None) -> dict[str, Any]:
    """The output message item; ``text=None`` gives the empty in-progress item of a stream."""
    return {
        "id": item_id,
        "type": "message",
        "status": "in_progress" if text is None else "completed",
        "role": "assistant",
        "content": [] if text is None else [_output_text_part(text)],
    }


def response_object(
    plan: Plan,
    response_id: str,
    item_id: str,
    created: int,
    request: dict[str, Any],
    *,
    completed: bool = True,
) -> dict[str, Any]:
    """A ``response`` object; ``completed=False`` is the in-progress snapshot a stream opens with."""
    max_output_tokens = request.get("max_output_tokens")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "completed" if completed else "in_progress",
        "background": False,
        "completed_at": created if completed else None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions") if isinstance(request.get("instructions"), str) else None,
        "max_output_tokens": max_output_tokens if isinstance(max_output_tokens, int) else None,
        "model": plan.model,
        "output": [_message_item(item_id, plan.text)] if completed else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": plan.service_tier,
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": responses_usage(plan) if completed and not plan.no_usage else None,
        "user": None,
        "metadata": {},
    }


def response_stream(plan: Plan, response_id: str, item_id: str, created: int, request: dict[str, Any]) -> EventStream:
    """Typed events as the Responses API streams them; ``response.completed`` carries the usage."""
    sequence = iter(range(1_000_000))

    def event(name: str, **fields: Any) -> bytes:
        return named_event(name, {"type": name, "sequence_number": next(sequence), **fields})

    in_progress = response_object(plan, response_id, item_id, created, request, completed=False)
    text = plan.text
    location = {"item_id": item_id, "output_index": 0, "content_index": 0}
    opening = [
        event("response.created", response=in_progress),
        event("response.in_progress", response=in_progress),
        event("response.output_item.added", output_index=0, item=_message_item(item_id, None)),
        event("response.content_part.added", **location, part=_output_text_part("")),
    ]
    deltas = [event("response.output_text.delta", **location, delta=text, logprobs=[]) for text in plan.text_deltas]
    completed = response_object(plan, response_id, item_id, created, request)
    closing = [
        event("response.output_text.done", **location, text=text, logprobs=[]),
        event("response.content_part.done", **location, part=_output_text_part(text)),
        event("response.output_item.done", output_index=0, item=_message_item(item_id, text)),
        event("response.completed", response=completed),
    ]
    return EventStream(opening=opening, deltas=deltas, closing=closing, final_usage=completed["usage"])


# ---- embeddings and models -------------------------------------------------------------------


@lru_cache(maxsize=64)
def embedding_vector(dimensions: int) -> tuple[tuple[float, ...], str]:
    """A fixed unit-ish vector and its base64 form (little-endian float32, as OpenAI packs it).

    The values are exact in float32, so the float and base64 encodings decode to equal lists.
    """
    values = tuple(((i % 7) - 3) / 8 for i in range(dimensions))
    packed = struct.pack(f"<{dimensions}f", *values)
    return values, base64.b64encode(packed).decode("ascii")


def embedding_input_count(value: Any) -> int:
    """How many embeddings an ``input`` asks for: a string or one token array is one."""
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


def embeddings_response(plan: Plan, request: dict[str, Any]) -> dict[str, Any]:
    dimensions = request.get("dimensions")
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 0 < dimensions <= 4096:
        dimensions = DEFAULT_EMBEDDING_DIMENSIONS
    floats, packed = embedding_vector(dimensions)
    vector: Any = packed if request.get("encoding_format") == "base64" else list(floats)
    response: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index in range(embedding_input_count(request.get("input")))
        ],
        "model": plan.model,
    }
    if not plan.no_usage:
        response["usage"] = embeddings_usage(plan)
    return response


MODELS_LIST_BODY = orjson.dumps(
    {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "system"}
            for model_id in MODEL_IDS
        ],
    }
)


# ---- errors ----------------------------------------------------------------------------------


def error_body(status: int, message: str, *, code: str | None = None) -> bytes:
    if status == 429:
        error_type, code = "requests", code or "rate_limit_exceeded"
    elif status >= 500:
        error_type = "server_error"
    else:
        error_type = "invalid_request_error"
    return orjson.dumps({"error": {"message": message, "type": error_type, "param": None, "code": code}})

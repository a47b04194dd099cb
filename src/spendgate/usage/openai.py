"""Usage as OpenAI reports it (chat, completions, embeddings, Responses API), streamed or not.

OpenAI's ``prompt_tokens`` / ``input_tokens`` already include cached tokens, and
``completion_tokens`` / ``output_tokens`` already include reasoning tokens, which is
exactly the normalized convention: no arithmetic needed, only renaming.

The service tier is reported beside ``usage``, not in it: ``service_tier`` on a chat
completion, on every chat chunk, and on a Responses API ``response`` object.
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.usage.model import Usage
from spendgate.usage.service_tier import normalize_service_tier
from spendgate.usage.sse import event_fields


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _details(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def openai_usage(usage: Any, service_tier: Any = None) -> Usage | None:
    """Normalize an OpenAI ``usage`` object of any endpoint; None when absent or malformed.

    ``service_tier`` is the ``service_tier`` field of the object that carried ``usage``.
    """
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:  # chat, completions, embeddings
        input_details = _details(usage.get("prompt_tokens_details"))
        output_details = _details(usage.get("completion_tokens_details"))
        return Usage(
            input_tokens=_int(usage.get("prompt_tokens")),
            cached_input_tokens=_int(input_details.get("cached_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            reasoning_tokens=_int(output_details.get("reasoning_tokens")),
            service_tier=normalize_service_tier(service_tier),
        )
    if "input_tokens" in usage:  # Responses API
        input_details = _details(usage.get("input_tokens_details"))
        output_details = _details(usage.get("output_tokens_details"))
        return Usage(
            input_tokens=_int(usage.get("input_tokens")),
            cached_input_tokens=_int(input_details.get("cached_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            reasoning_tokens=_int(output_details.get("reasoning_tokens")),
            service_tier=normalize_service_tier(service_tier),
        )
    return None


def openai_response_usage(body: Any) -> tuple[Usage | None, str | None]:
    """(usage, reported model) of a non-streamed OpenAI response body."""
    if not isinstance(body, dict):
        return None, None
    model = body.get("model")
    return openai_usage(body.get("usage"), body.get("service_tier")), model if isinstance(model, str) else None


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


class ChatStreamObserver:
    """Watches a chat/completions stream for usage and output size.

    When the gateway asked for usage on the client's behalf (``strip_usage_chunk``), the
    extra usage-only chunk is withheld so the client sees the stream it asked for.
    """

    __slots__ = ("model", "output_chars", "service_tier", "strip_usage_chunk", "usage")

    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self.strip_usage_chunk = strip_usage_chunk
        self.usage: Usage | None = None
        self.model: str | None = None
        self.service_tier: Any = None  # as last reported by a chunk (every chat chunk has it)
        self.output_chars = 0

    def observe(self, raw_event: bytes) -> bool:
        _, data = event_fields(raw_event)
        if data is None or data == b"[DONE]":
            return True
        chunk = _loads(data)
        if not isinstance(chunk, dict):
            return True
        if self.model is None and isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if chunk.get("service_tier") is not None:
            self.service_tier = chunk["service_tier"]
        choices = chunk.get("choices")
        if choices:
            self.output_chars += _choices_chars(choices)
        usage = openai_usage(chunk.get("usage"), self.service_tier)
        if usage is not None:
            self.usage = usage
            if self.strip_usage_chunk and not choices:
                return False
        return True


def _choices_chars(choices: Any) -> int:
    chars = 0
    if not isinstance(choices, list):
        return 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")  # legacy completions
        if isinstance(text, str):
            chars += len(text)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for field in ("content", "reasoning_content", "refusal"):
                value = delta.get(field)
                if isinstance(value, str):
                    chars += len(value)
            tool_calls = delta.get("tool_calls")
            for call in tool_calls if isinstance(tool_calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    chars += len(function["arguments"])
    return chars


_RESPONSES_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamObserver:
    """Watches a Responses API stream: usage arrives with the final response event."""

    __slots__ = ("model", "output_chars", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.model: str | None = None
        self.output_chars = 0

    def observe(self, raw_event: bytes) -> bool:
        _, data = event_fields(raw_event)
        if data is None:
            return True
        event = _loads(data)
        if not isinstance(event, dict):
            return True
        kind = event.get("type")
        if isinstance(kind, str) and kind.endswith(".delta"):
            delta = event.get("delta")
            if isinstance(delta, str):
                self.output_chars += len(delta)
        elif kind in _RESPONSES_FINAL_EVENTS or kind == "response.created":
            response = event.get("response")
            if isinstance(response, dict):
                if isinstance(response.get("model"), str):
                    self.model = response["model"]
                usage = openai_usage(response.get("usage"), response.get("service_tier"))
                if usage is not None:
                    self.usage = usage
        return True

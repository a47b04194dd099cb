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

from spendgate.usage.bounds import MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, token_count
from spendgate.usage.model import Anomaly, Usage
from spendgate.usage.service_tier import normalize_service_tier
from spendgate.usage.sse import event_fields


def _details(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def openai_usage(usage: Any, service_tier: Any = None) -> Usage | None:
    """Normalize an OpenAI ``usage`` object of any endpoint; None when absent or malformed.

    ``service_tier`` is the ``service_tier`` field of the object that carried ``usage``.
    """
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:  # chat, completions, embeddings
        names = ("prompt_tokens", "completion_tokens")
    elif "input_tokens" in usage:  # Responses API
        names = ("input_tokens", "output_tokens")
    else:
        return None
    input_name, output_name = names
    input_details = _details(usage.get(input_name + "_details"))
    output_details = _details(usage.get(output_name + "_details"))
    anomalies: list[Anomaly] = []
    return Usage(
        input_tokens=token_count(usage.get(input_name), input_name, MAX_INPUT_TOKENS, anomalies),
        cached_input_tokens=token_count(
            input_details.get("cached_tokens"), input_name + "_details.cached_tokens", MAX_INPUT_TOKENS, anomalies
        ),
        output_tokens=token_count(usage.get(output_name), output_name, MAX_OUTPUT_TOKENS, anomalies),
        reasoning_tokens=token_count(
            output_details.get("reasoning_tokens"),
            output_name + "_details.reasoning_tokens",
            MAX_OUTPUT_TOKENS,
            anomalies,
        ),
        service_tier=normalize_service_tier(service_tier),
        anomalies=tuple(anomalies),
    )


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
    """Watches a chat/completions stream for usage, output size and its end.

    When the gateway asked for usage on the client's behalf (``strip_usage_chunk``), the
    extra usage-only chunk is withheld so the client sees the stream it asked for.

    ``finished``: the provider said it was done, with ``[DONE]`` or a ``finish_reason``. A
    stream that closes without either was cut short, however cleanly the connection ended.
    """

    __slots__ = ("finished", "model", "output_chars", "service_tier", "strip_usage_chunk", "usage")

    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self.strip_usage_chunk = strip_usage_chunk
        self.usage: Usage | None = None
        self.model: str | None = None
        self.service_tier: Any = None  # as last reported by a chunk (every chat chunk has it)
        self.output_chars = 0
        self.finished = False

    def observe(self, raw_event: bytes) -> bool:
        _, data = event_fields(raw_event)
        if data is None:
            return True
        if data == b"[DONE]":
            self.finished = True
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
            if not self.finished:
                self.finished = _any_finish_reason(choices)
        usage = openai_usage(chunk.get("usage"), self.service_tier)
        if usage is not None:
            self.usage = usage
            if self.strip_usage_chunk and not choices:
                return False
        return True


def _any_finish_reason(choices: Any) -> bool:
    if not isinstance(choices, list):
        return False
    return any(isinstance(choice, dict) and choice.get("finish_reason") is not None for choice in choices)


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
    """Watches a Responses API stream: usage arrives with the final response event
    (``response.completed``, ``.incomplete`` or ``.failed``), whose arrival is ``finished``."""

    __slots__ = ("finished", "model", "output_chars", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.model: str | None = None
        self.output_chars = 0
        self.finished = False

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
            self.finished = self.finished or kind in _RESPONSES_FINAL_EVENTS
            response = event.get("response")
            if isinstance(response, dict):
                if isinstance(response.get("model"), str):
                    self.model = response["model"]
                usage = openai_usage(response.get("usage"), response.get("service_tier"))
                if usage is not None:
                    self.usage = usage
        return True

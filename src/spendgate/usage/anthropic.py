"""Usage as Anthropic reports it, streamed or not.

Anthropic's ``input_tokens`` EXCLUDES cache reads and cache writes, which are reported
beside it; the normalized ``input_tokens`` counts every input token, so they are added in
here, in one place. ``usage.service_tier`` says which tier served the request (``standard``,
``priority``, ``batch``).
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.usage.bounds import MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, token_count
from spendgate.usage.model import Anomaly, Usage
from spendgate.usage.service_tier import normalize_service_tier
from spendgate.usage.sse import event_fields


def anthropic_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict) or ("input_tokens" not in usage and "output_tokens" not in usage):
        return None
    anomalies: list[Anomaly] = []

    def count(value: Any, field: str, ceiling: int = MAX_INPUT_TOKENS) -> int:
        return token_count(value, field, ceiling, anomalies)

    cache_read = count(usage.get("cache_read_input_tokens"), "cache_read_input_tokens")
    cache_write = count(usage.get("cache_creation_input_tokens"), "cache_creation_input_tokens")
    breakdown = usage.get("cache_creation")
    cache_write_1h = (
        count(breakdown.get("ephemeral_1h_input_tokens"), "cache_creation.ephemeral_1h_input_tokens")
        if isinstance(breakdown, dict)
        else 0
    )
    return Usage(
        input_tokens=count(usage.get("input_tokens"), "input_tokens") + cache_read + cache_write,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(cache_write_1h, cache_write),
        output_tokens=count(usage.get("output_tokens"), "output_tokens", MAX_OUTPUT_TOKENS),
        service_tier=normalize_service_tier(usage.get("service_tier")),
        anomalies=tuple(anomalies),
    )


def anthropic_response_usage(body: Any) -> tuple[Usage | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    model = body.get("model")
    return anthropic_usage(body.get("usage")), model if isinstance(model, str) else None


class MessagesStreamObserver:
    """Watches a Messages stream.

    ``message_start`` carries the input side of usage, ``message_delta`` the final,
    cumulative output count (and, in newer API versions, may restate the input side).
    Usage counts as reported only once ``message_delta`` has arrived: a stream cut before
    it has exact input tokens but an unknown output, which the gateway estimates.

    ``finished``: ``message_stop`` arrived, or the ``message_delta`` that carries the
    ``stop_reason`` (after it nothing but ``message_stop`` is sent: the answer is whole).
    """

    __slots__ = ("_raw", "finished", "model", "output_chars", "usage")

    def __init__(self) -> None:
        self._raw: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.output_chars = 0
        self.finished = False

    @property
    def partial_usage(self) -> Usage | None:
        """What ``message_start`` told, even when the stream ended before ``message_delta``."""
        return anthropic_usage(self._raw) if self._raw else None

    def observe(self, raw_event: bytes) -> bool:
        _, data = event_fields(raw_event)
        if data is None:
            return True
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(event, dict):
            return True
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                for field in ("text", "partial_json", "thinking"):
                    value = delta.get(field)
                    if isinstance(value, str):
                        self.output_chars += len(value)
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("model"), str):
                    self.model = message["model"]
                if isinstance(message.get("usage"), dict):
                    self._raw.update(message["usage"])
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, dict):
                self._raw.update({k: v for k, v in usage.items() if v is not None})
                self.usage = anthropic_usage(self._raw)
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.finished = True
        elif kind == "message_stop":
            self.finished = True
        return True

"""Usage as Anthropic reports it, streamed or not.

Anthropic's ``input_tokens`` EXCLUDES cache reads and cache writes, which are reported
beside it; the normalized ``input_tokens`` counts every input token, so they are added in
here, in one place. ``usage.service_tier`` says which tier served the request (``standard``,
``priority``, ``batch``).
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.usage.model import Usage
from spendgate.usage.service_tier import normalize_service_tier
from spendgate.usage.sse import event_fields


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict) or ("input_tokens" not in usage and "output_tokens" not in usage):
        return None
    cache_read = _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    breakdown = usage.get("cache_creation")
    cache_write_1h = _int(breakdown.get("ephemeral_1h_input_tokens")) if isinstance(breakdown, dict) else 0
    return Usage(
        input_tokens=_int(usage.get("input_tokens")) + cache_read + cache_write,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(cache_write_1h, cache_write),
        output_tokens=_int(usage.get("output_tokens")),
        service_tier=normalize_service_tier(usage.get("service_tier")),
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
    """

    __slots__ = ("_raw", "model", "output_chars", "usage")

    def __init__(self) -> None:
        self._raw: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.output_chars = 0

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
        return True

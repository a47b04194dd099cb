"""W3C trace context (https://www.w3.org/TR/trace-context/): the ids a proxied request carries
in its ``traceparent`` header, kept on its event so that an OpenTelemetry span exported later
for the same call is linked to it rather than counted twice (pure)."""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def span_ref(trace_id: str, span_id: str) -> str:
    """How the ledger keeps a span's identity: ``TRACE-SPAN``, lower-case hex."""
    return f"{trace_id}-{span_id}"


def _valid(value: str | None) -> re.Match[str] | None:
    if not value or len(value) > 256:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None or match[1] == "ff" or match[2] == _ZERO_TRACE or match[3] == _ZERO_SPAN:
        return None
    return match


def traceparent_trace_id(value: str | None) -> str | None:
    """The trace id of a valid ``traceparent`` header (32 lower-case hex), else None: one agent
    run instrumented with OpenTelemetry, for a request that names no ``x-spendgate-trace-id``."""
    match = _valid(value)
    return match[2] if match else None


def traceparent_ref(value: str | None) -> str | None:
    """``TRACE-PARENT`` of a valid ``traceparent`` header, else None (an invalid header is
    ignored, as the spec says a receiver must)."""
    match = _valid(value)
    return span_ref(match[2], match[3]) if match else None

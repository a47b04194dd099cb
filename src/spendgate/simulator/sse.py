"""Server-sent event framing, and the three-part layout every simulated stream shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DONE_EVENT = b"data: [DONE]\n\n"


def data_event(payload: Any) -> bytes:
    """An unnamed event, as OpenAI's chat and completions streams send them."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named_event(name: str, payload: Any) -> bytes:
    """A named event, as the Responses API and Anthropic send them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


@dataclass(slots=True)
class EventStream:
    """A stream cut where a simulated break can happen: after some of the text deltas.

    ``opening`` events go before the text deltas and ``closing`` events after them.
    ``opening_usage`` is usage already carried by the opening (Anthropic's ``message_start``);
    ``final_usage`` is the usage a client holds after the closing events (None if none is sent).
    """

    opening: list[bytes]
    deltas: list[bytes]
    closing: list[bytes]
    final_usage: dict[str, Any] | None
    opening_usage: dict[str, Any] | None = None

"""The worst case a request can cost, reserved before it goes upstream (pure).

Input tokens are estimated from the request's text at THREE characters a token — more
tokens than English usually takes (about four), so the reservation errs high; output is
the request's own cap (max_tokens and its aliases) or, when it sets none, the model's
maximum output. A reservation that errs high only holds money until the request settles.
"""

from __future__ import annotations

from typing import Any

from spendgate.usage.estimate import TOKENS_PER_MESSAGE, text_chars

RESERVE_CHARS_PER_TOKEN = 3
OUTPUT_CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")

# Maximum output tokens of model families, used when a request sets no cap of its own.
# Longest prefix wins; unknown models get DEFAULT_MAX_OUTPUT.
MAX_OUTPUT_BY_PREFIX = {
    "gpt-3.5": 4_096,
    "gpt-4": 8_192,
    "gpt-4-turbo": 4_096,
    "gpt-4o": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.5": 16_384,
    "gpt-5": 128_000,
    "o1": 100_000,
    "o3": 100_000,
    "o4": 100_000,
    "claude": 64_000,
    "text-embedding": 0,
}
DEFAULT_MAX_OUTPUT = 16_384


def max_output_tokens(model: str, body: dict[str, Any]) -> int:
    for field in OUTPUT_CAP_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    name = model.lower()
    best = max((p for p in MAX_OUTPUT_BY_PREFIX if name.startswith(p)), key=len, default=None)
    return MAX_OUTPUT_BY_PREFIX[best] if best is not None else DEFAULT_MAX_OUTPUT


def reservation_tokens(kind: str, model: str, body: dict[str, Any]) -> tuple[int, int]:
    """(input, output) tokens to reserve for a request of this endpoint kind."""
    chars = text_chars(body)
    messages = body.get("messages")
    framing = TOKENS_PER_MESSAGE * len(messages) if isinstance(messages, list) else TOKENS_PER_MESSAGE
    input_tokens = -(-chars // RESERVE_CHARS_PER_TOKEN) + framing
    output_tokens = 0 if kind == "embeddings" else max_output_tokens(model, body)
    return input_tokens, output_tokens

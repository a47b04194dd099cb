"""Token estimates for when a provider never reported usage (broken stream, disconnect).

A rough, deliberately simple rule (about four characters a token, as both providers
document for English text), applied to the text the request carried and the text that
was streamed. Events priced from it are flagged ``estimated`` so nobody mistakes them
for billed figures.
"""

from __future__ import annotations

from typing import Any

from spendgate.jsondepth import MAX_DEPTH

CHARS_PER_TOKEN = 4
# Providers add a few tokens of framing per message (role markers, separators).
TOKENS_PER_MESSAGE = 4

_TEXT_FIELDS = ("messages", "input", "prompt", "system", "instructions", "tools")


def _text_chars(value: Any, depth: int) -> int:
    # On every request's path (reservation and begin record): plain loops, no generator frames.
    if isinstance(value, str):
        return len(value)
    if depth > MAX_DEPTH:  # deeper than any body the gateway accepts: not counted, not recursed into
        return 0
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (dict, list)):
            total += _text_chars(item, depth + 1)
    return total


def tokens_for_chars(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def text_chars(body: dict[str, Any]) -> int:
    """Characters of text a request sends (messages, prompt, system, tools…)."""
    total = 0
    for field in _TEXT_FIELDS:
        value = body.get(field)
        if value is not None:
            total += _text_chars(value, 2)  # the body is level 1
    return total


def estimate_input_tokens(body: dict[str, Any]) -> int:
    chars = text_chars(body)
    messages = body.get("messages")
    framing = TOKENS_PER_MESSAGE * len(messages) if isinstance(messages, list) else 0
    return tokens_for_chars(chars) + framing

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
# What providers bill around the text. OpenAI's cookbook ("How to count tokens with tiktoken")
# counts 3 tokens per message, 1 more for a name, and 3 to prime the reply; Anthropic bills a
# similar few per block (its token-counting example: a system prompt and one message of about
# 8 tokens of text count 14). The name's token is counted for every message, and a system
# prompt or instructions as one more message, so the framing is never short.
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3

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


def framing_tokens(body: dict[str, Any]) -> int:
    """Tokens providers bill around a request's text: per message (or input item, system
    prompt, instructions) and once to prime the reply."""
    blocks = 0
    for field in ("messages", "input"):
        value = body.get(field)
        if isinstance(value, list):
            blocks += len(value)
        elif value is not None:
            blocks += 1  # the Responses API's input as one string
    for field in ("system", "instructions"):
        if body.get(field):
            blocks += 1
    return REPLY_PRIMING_TOKENS + TOKENS_PER_MESSAGE * blocks


def estimate_input_tokens(body: dict[str, Any]) -> int:
    return tokens_for_chars(text_chars(body)) + framing_tokens(body)

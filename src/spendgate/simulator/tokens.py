"""Input tokens as a provider bills them, when a request carries no ``input=`` directive.

Text is counted at about four characters a token (the rule of thumb both providers give for
English), each string at least one token, and around it the framing providers bill on top
of the text: OpenAI's cookbook ("How to count tokens with tiktoken") counts 3 tokens per
message, 1 more for a ``name``, and 3 to prime the reply; Anthropic's token-counting example
bills a similar few tokens per block (a system prompt and one message of about 8 tokens of
text count 14), so a system prompt or ``instructions`` counts as one more message. Prompts
of legacy completions and embeddings inputs have no framing. Images count as one 512-pixel
tile at OpenAI's high detail (765 tokens), whatever their encoding.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS = 765
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def text_tokens(value: Any) -> int:
    """Tokens of every string in ``value`` (keys aside), images at ``IMAGE_TOKENS``."""
    if isinstance(value, str):
        return -(-len(value) // CHARS_PER_TOKEN) if value else 0
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return len(value)  # already tokens (prompt or embeddings input as token ids)
        return sum(text_tokens(item) for item in value)
    if isinstance(value, dict):
        if value.get("type") in IMAGE_PARTS:
            return IMAGE_TOKENS
        return sum(text_tokens(item) for item in value.values())
    return 0


def _message_tokens(message: Any) -> int:
    named = isinstance(message, dict) and "name" in message
    return TOKENS_PER_MESSAGE + text_tokens(message) + (TOKENS_PER_NAME if named else 0)


def billed_input_tokens(request: dict[str, Any], *, framed: bool) -> int:
    """What a provider would bill as input for ``request``; never zero."""
    total = text_tokens(request.get("prompt")) + text_tokens(request.get("tools"))
    if not framed:
        return max(1, total + text_tokens(request.get("input")))
    for field in ("system", "instructions"):
        if request.get(field):
            total += _message_tokens(request[field])
    messages = request.get("input", request.get("messages"))
    if isinstance(messages, list):
        total += sum(_message_tokens(message) for message in messages)
    elif messages is not None:
        total += _message_tokens(messages)  # the Responses API's input as one string
    return max(1, total + REPLY_PRIMING_TOKENS)

"""The worst case a request can cost, reserved before it goes upstream (pure).

Input tokens are estimated from what the request carries:

- text at THREE characters a token — more tokens than English usually takes (about four),
  so the reservation errs high — and each byte of a non-ASCII character's UTF-8 beyond the
  first as one more token (a CJK character ~2.3 tokens, an emoji ~3.3: tokenizers spend one
  to three tokens on those, so counting them as a third of a token would reserve a Chinese
  prompt at a fifth of its cost);
- each image at ``IMAGE_RESERVE_TOKENS``, whatever its encoding: a base64 image counted as
  text would reserve hundreds of thousands of tokens for what bills about a thousand, and
  refuse requests a budget can afford;
- input the request *refers to* but does not carry — a stored conversation
  (``previous_response_id``, ``conversation``), a stored prompt, a file, a PDF or audio —
  cannot be measured here, so the honest worst case is the model's whole context window.
  Without this, forty concurrent "continue" requests of a Responses API agent would each
  reserve a few tokens and could together pass a budget by forty times what they reserved;
- around the text, the framing providers bill (``framing_tokens``: a few tokens per message
  and the reply's priming), and each string at least one token: on a tiny request that
  framing is most of the bill.

Text is capped at the context window too (a provider refuses more). Output is the
request's own cap (max_tokens and its aliases) or, when it sets none, the model's maximum
output (in learned mode, what the model usually writes: budgets/reservations.py), times the
answers it asks for (``n``, or ``best_of`` of a legacy completion). A
reservation that errs high only holds money until the request settles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spendgate.jsondepth import MAX_DEPTH
from spendgate.usage.estimate import TOKENS_PER_MESSAGE

RESERVE_CHARS_PER_TOKEN = 3
# What providers bill around the text. OpenAI's cookbook ("How to count tokens with tiktoken")
# counts 3 tokens per message, 1 more for a name, and 3 to prime the reply; Anthropic bills a
# similar few per block (its token-counting example: a system prompt and one message of about
# 8 tokens of text count 14). TOKENS_PER_MESSAGE (4) counts a name's token for every message,
# and a system prompt or instructions counts as one more message, so the framing is never short.
REPLY_PRIMING_TOKENS = 3
OUTPUT_CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Several answers to one request, each up to the output cap (and each billed).
ANSWER_COUNT_KINDS = frozenset({"chat", "completions"})
ANSWER_COUNT_FIELDS = ("n", "best_of")

# Above what any current model bills for one image: OpenAI's patch-based models stop at
# 1,536 patches (× up to 2.5 for some), tile-based ones at ~1,100–6,000 for "high" detail;
# Anthropic resizes to ~1.15 megapixels (~1,600 tokens).
IMAGE_RESERVE_TOKENS = 6_000

# Request fields that hold what the model reads.
INPUT_FIELDS = ("messages", "input", "prompt", "system", "instructions", "tools")
# Content parts that are images, and parts whose size the request does not show.
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
OPAQUE_PARTS = frozenset({"file", "input_file", "input_audio", "audio", "item_reference"})
# Body fields that pull in stored input: the Responses API's conversation state.
OPAQUE_REFERENCES = ("previous_response_id", "conversation")

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
    "gemini": 65_536,
    "text-embedding": 0,
}
DEFAULT_MAX_OUTPUT = 16_384

# Context windows (input the model can read at most). Longest prefix wins; unknown models
# get DEFAULT_CONTEXT_WINDOW, deliberately large: it only bounds opaque input.
CONTEXT_WINDOW_BY_PREFIX = {
    "gpt-3.5": 16_385,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-4-turbo": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.5": 128_000,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
    "claude": 200_000,
    "claude-sonnet-4": 1_000_000,  # with the 1M-context beta
    "text-embedding": 8_192,
}
DEFAULT_CONTEXT_WINDOW = 1_000_000


def _by_prefix(table: dict[str, int], model: str, default: int) -> int:
    name = model.lower()
    best = max((p for p in table if name.startswith(p)), key=len, default=None)
    return table[best] if best is not None else default


def output_cap(body: dict[str, Any]) -> int | None:
    """The request's own output cap (max_tokens and its aliases), None when it sets none."""
    for field in OUTPUT_CAP_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def max_output_tokens(model: str, body: dict[str, Any]) -> int:
    cap = output_cap(body)
    return cap if cap is not None else _by_prefix(MAX_OUTPUT_BY_PREFIX, model, DEFAULT_MAX_OUTPUT)


def context_window(model: str) -> int:
    return _by_prefix(CONTEXT_WINDOW_BY_PREFIX, model, DEFAULT_CONTEXT_WINDOW)


@dataclass(slots=True)
class InputShape:
    """What a request's input is made of, as far as the request shows it."""

    text_units: int = 0  # thirds of a token: one per ASCII character, more for the others
    images: int = 0
    opaque: bool = False  # refers to input it does not carry, or carries it unmeasurably


def _walk(value: Any, shape: InputShape, depth: int) -> None:
    if isinstance(value, str):
        if value.isascii():
            # However short, a string is at least one token (a lone "a" is not a third of one).
            length = len(value)
            shape.text_units += length if length >= RESERVE_CHARS_PER_TOKEN or not length else RESERVE_CHARS_PER_TOKEN
        else:  # each extra UTF-8 byte counts as a token: 3 units
            shape.text_units += 3 * len(value.encode()) - 2 * len(value)
    elif depth > MAX_DEPTH:
        # Deeper than any body the gateway accepts: never measured, never recursed into.
        shape.opaque = True
    elif isinstance(value, list):
        for item in value:
            _walk(item, shape, depth + 1)
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind in IMAGE_PARTS:
            shape.images += 1
            return
        if kind in OPAQUE_PARTS:
            shape.opaque = True
            return
        if kind == "document":  # Anthropic: plain text is measurable, a PDF or a file id is not
            source = value.get("source")
            if not (isinstance(source, dict) and source.get("type") == "text"):
                shape.opaque = True
                return
        for item in value.values():
            _walk(item, shape, depth + 1)


def input_shape(body: dict[str, Any]) -> InputShape:
    shape = InputShape()
    for field in INPUT_FIELDS:
        value = body.get(field)
        if field == "prompt" and isinstance(value, dict):
            shape.opaque = True  # the Responses API's stored prompt template, by id
            continue
        _walk(value, shape, 2)  # the body is level 1
    if any(body.get(field) for field in OPAQUE_REFERENCES):
        shape.opaque = True
    return shape


def framing_tokens(body: dict[str, Any]) -> int:
    """Tokens providers bill around a request's text, at most: per message (or input item,
    system prompt, instructions) and once to prime the reply."""
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


def answers(kind: str, body: dict[str, Any]) -> int:
    """How many answers a request is billed for: ``n`` of chat and legacy completions, or a
    legacy completion's ``best_of`` (it generates that many and returns ``n``). A value the
    provider would refuse counts as one."""
    if kind not in ANSWER_COUNT_KINDS:
        return 1
    count = 1
    for field in ANSWER_COUNT_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > count:
            count = value
    return count


def reservation_tokens(
    kind: str, model: str, body: dict[str, Any], learned_output: int | None = None
) -> tuple[int, int]:
    """(input, output) tokens to reserve for a request of this endpoint kind. ``learned_output``
    (learned mode, budgets/reservations.py) replaces the model's maximum output per answer for a
    request that sets no cap of its own, never above that maximum; a cap is a real bound and
    is reserved as it is."""
    shape = input_shape(body)
    window = context_window(model)
    if shape.opaque:
        input_tokens = window
    else:
        text = -(-shape.text_units // RESERVE_CHARS_PER_TOKEN)
        input_tokens = min(window, text + framing_tokens(body) + shape.images * IMAGE_RESERVE_TOKENS)
    if kind == "embeddings":
        output_tokens = 0
    else:
        per_answer = max_output_tokens(model, body)
        if learned_output is not None and output_cap(body) is None:
            per_answer = min(learned_output, per_answer)
        output_tokens = per_answer * answers(kind, body)
    return input_tokens, output_tokens

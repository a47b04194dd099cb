"""What the simulator will do for one request: token counts, reply text, timing and failures.

A :class:`Plan` is the directives of :mod:`spendgate.simulator.directives` checked, turned into
numbers, and completed with deterministic defaults. Token counts are stored in each provider's
own convention, so the shape builders can copy them without arithmetic:

- OpenAI: ``input_tokens`` INCLUDES cached tokens; ``output_tokens`` INCLUDES reasoning tokens.
- Anthropic: ``input_tokens`` EXCLUDES cache reads and cache writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from spendgate.simulator.directives import DIRECTIVE_OPEN, parse_directives
from spendgate.simulator.tokens import billed_input_tokens

Provider = Literal["openai", "anthropic"]

DEFAULT_OUTPUT_TOKENS = 16
MAX_REQUESTED_OUTPUT_TOKENS = 64
DEFAULT_CHUNKS = 4
DEFAULT_WORD = "ok"
DEFAULT_MODEL = "sim-model"
MAX_CHOICES = 128  # OpenAI's limit on n
# Request fields that cap the output, in the order they are consulted.
MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")

# Token counts may be anything a misbehaving upstream could report: negative, or past any
# real request (up to what a JSON encoder writes as an integer: 64 bits).
TOKEN_KEYS = frozenset({"input", "cached", "cache_write", "cache_write_1h", "output", "reasoning"})
INT_KEYS = TOKEN_KEYS | frozenset(
    {
        "status",
        "chunks",
        "break_after",
        "end_after",
        "long_delta",
        "delay_ms",
        "chunk_delay_ms",
    }
)
MIN_TOKEN_COUNT = -(2**63)
MAX_TOKEN_COUNT = 2**64 - 1
FLAG_KEYS = frozenset({"no_usage"})
TEXT_KEYS = frozenset({"model", "text", "service_tier"})
KNOWN_KEYS = INT_KEYS | FLAG_KEYS | TEXT_KEYS
FLAG_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class DirectiveError(ValueError):
    """A directive the simulator cannot honour; answered with a 400 so test typos are loud."""


@dataclass(slots=True)
class Plan:
    model: str
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    reasoning_tokens: int
    status: int | None
    text_deltas: tuple[str, ...]
    break_after: int | None
    no_usage: bool
    delay_ms: float
    chunk_delay_ms: float
    service_tier: str | None = None  # the tier the answer reports; None: the answer omits it
    # A stream that ends cleanly (no error, no broken connection) after this many deltas,
    # without its final events: no finish_reason, [DONE], response.completed or message_stop.
    end_after: int | None = None
    choices: int = 1  # answers returned (n); output_tokens counts every answer generated

    @property
    def text(self) -> str:
        return "".join(self.text_deltas)


@lru_cache(maxsize=256)
def text_deltas(word: str, count: int) -> tuple[str, ...]:
    """``count`` deltas that join to ``count`` words: ("ok", " ok", " ok", ...)."""
    if count <= 0:
        return ()
    return (word, *([" " + word] * (count - 1)))


def default_output_tokens(request: dict[str, Any]) -> int:
    """Output of every answer generated: one per choice (``n``), or ``best_of`` of them."""
    per_answer = DEFAULT_OUTPUT_TOKENS
    for field in MAX_TOKENS_FIELDS:
        value = request.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            per_answer = value if 0 <= value <= MAX_REQUESTED_OUTPUT_TOKENS else DEFAULT_OUTPUT_TOKENS
            break
    return per_answer * max(_count(request, "n"), _count(request, "best_of"))


def reported_service_tier(request: dict[str, Any], provider: Provider) -> str:
    """The tier the provider reports by default: OpenAI serves the tier asked for (``auto``
    and none as ``default``, ``fast`` as ``priority``); Anthropic reports ``standard``."""
    if provider == "anthropic":
        return "standard"
    asked = request.get("service_tier")
    if not isinstance(asked, str) or asked in ("auto", ""):
        return "default"
    return "priority" if asked == "fast" else asked


def _count(request: dict[str, Any], field: str) -> int:
    value = request.get(field)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CHOICES:
        raise DirectiveError(f"{field} must be an integer between 1 and {MAX_CHOICES}")
    return value


def make_plan(
    raw: bytes,
    request: dict[str, Any],
    provider: Provider,
    *,
    framed: bool = True,
    default_latency_ms: float = 0.0,
) -> Plan:
    """Build the plan for a request whose raw body is ``raw`` and parsed body is ``request``;
    ``framed`` when its input is messages (see :mod:`spendgate.simulator.tokens`).

    Raises :class:`DirectiveError` for unknown keys or malformed values.
    """
    requested_model = request.get("model")
    model = requested_model if isinstance(requested_model, str) and requested_model else DEFAULT_MODEL
    # The fast path (the benchmark upstream): no directive, no parsing beyond one substring search.
    directives = parse_directives(raw) if DIRECTIVE_OPEN in raw else {}
    if not directives:
        return Plan(
            model=model,
            input_tokens=billed_input_tokens(request, framed=framed),
            cached_tokens=0,
            cache_write_tokens=0,
            cache_write_1h_tokens=0,
            output_tokens=default_output_tokens(request),
            reasoning_tokens=0,
            status=None,
            text_deltas=text_deltas(DEFAULT_WORD, DEFAULT_CHUNKS),
            break_after=None,
            no_usage=False,
            delay_ms=default_latency_ms,
            chunk_delay_ms=0.0,
            service_tier=reported_service_tier(request, provider),
            choices=_count(request, "n"),
        )

    numbers = _checked_numbers(directives)
    cached = numbers.get("cached", 0)
    cache_write = numbers.get("cache_write", 0)
    cache_write_1h = numbers.get("cache_write_1h", 0)
    if cache_write_1h > cache_write:
        if "cache_write" in numbers:
            raise DirectiveError("cache_write_1h cannot exceed cache_write")
        cache_write = cache_write_1h
    reasoning = numbers.get("reasoning", 0)

    input_tokens = numbers.get("input")
    if input_tokens is None:
        input_tokens = billed_input_tokens(request, framed=framed)
        if provider == "openai":
            # OpenAI's prompt_tokens include the cached part: keep the default as the uncached part.
            input_tokens += cached
    output_tokens = numbers.get("output")
    if output_tokens is None:
        output_tokens = default_output_tokens(request)
        if provider == "openai":
            # OpenAI's completion_tokens include reasoning: keep the default as the visible part.
            output_tokens += reasoning

    status = numbers.get("status")
    if status is not None and not 100 <= status <= 599:
        raise DirectiveError(f"status must be an HTTP status code, got {status}")
    if status is not None and status < 400:
        status = None  # a success status just means "answer normally"

    break_after = numbers.get("break_after")
    end_after = numbers.get("end_after")
    if break_after is not None and end_after is not None:
        raise DirectiveError("break_after and end_after are two ways to end a stream: choose one")
    # A broken or cut stream sends exactly that many deltas, whatever chunks says.
    cut = break_after if break_after is not None else end_after
    chunks = cut if cut is not None else numbers.get("chunks", DEFAULT_CHUNKS)
    word = directives.get("text") or DEFAULT_WORD
    service_tier = directives.get("service_tier") or reported_service_tier(request, provider)
    deltas = text_deltas(word, chunks)
    if numbers.get("long_delta"):
        # One more delta, of that many characters: a single SSE line of about that size.
        deltas = (*deltas, "x" * numbers["long_delta"])

    return Plan(
        model=directives.get("model") or model,
        input_tokens=input_tokens,
        cached_tokens=cached,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write_1h,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        status=status,
        text_deltas=deltas,
        break_after=break_after,
        no_usage=_flag(directives, "no_usage"),
        delay_ms=float(numbers.get("delay_ms", default_latency_ms)),
        chunk_delay_ms=float(numbers.get("chunk_delay_ms", 0)),
        service_tier=None if service_tier == "none" else service_tier,
        end_after=end_after,
        choices=_count(request, "n"),
    )


def _checked_numbers(directives: dict[str, str]) -> dict[str, int]:
    unknown = directives.keys() - KNOWN_KEYS
    if unknown:
        raise DirectiveError(f"unknown simulator directive key(s): {', '.join(sorted(unknown))}")
    numbers: dict[str, int] = {}
    for key, value in directives.items():
        if key not in INT_KEYS:
            continue
        if key in TOKEN_KEYS:
            digits = value[1:] if value.startswith("-") else value
            if not (digits.isascii() and digits.isdigit() and MIN_TOKEN_COUNT <= int(value) <= MAX_TOKEN_COUNT):
                raise DirectiveError(f"simulator directive {key} needs a 64-bit integer, got {value!r}")
        elif not (value.isascii() and value.isdigit()):
            raise DirectiveError(f"simulator directive {key} needs a non-negative integer, got {value!r}")
        numbers[key] = int(value)
    return numbers


def _flag(directives: dict[str, str], key: str) -> bool:
    value = directives.get(key)
    if value is None:
        return False
    try:
        return FLAG_VALUES[value.lower()]
    except KeyError:
        raise DirectiveError(f"simulator directive {key} needs 1 or 0, got {value!r}") from None

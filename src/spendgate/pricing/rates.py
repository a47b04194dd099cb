"""Resolved unit prices for one request, and the exact cost of a usage at those prices.

Only token prices and a per-request price are modelled. Other units genai-prices knows
(web searches, audio seconds, images, characters, citation tokens…) are out of scope: the
gateway's ``Usage`` does not count them, so they are never charged here.

``cost`` is on the gateway's hot path, so it does integer arithmetic: a ``Rates`` keeps its
prices as integers in one common unit (10**-k USD per million tokens, k the most decimal places
among them), counts multiply and add as Python ints, and one Decimal is made at the end under
an unlimited-precision context: exact, whatever the ambient decimal context says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal

from spendgate.usage.model import Usage

__all__ = ("Rates", "cost")

ZERO = Decimal(0)
# Scaling an exact integer under this context can never round.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

# Per-token fields in the order of ``Rates._scaled`` (request_kusd is kept apart).
_TOKEN_FIELDS = (
    "input_mtok",
    "cached_input_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
    "reasoning_mtok",
)
PRICE_FIELDS = (*_TOKEN_FIELDS, "request_kusd")


def _coefficient_exponent(value: Decimal) -> tuple[int, int]:
    """``value == coefficient * 10**exponent`` exactly, with integers (no context rounding)."""
    sign, digits, exponent = value.as_tuple()
    coefficient = int("".join(map(str, digits))) if digits else 0
    return (-coefficient if sign else coefficient), int(exponent)


def exact_product(a: Decimal, b: Decimal, shift: int = 0) -> Decimal:
    """``a * b * 10**shift`` without rounding, whatever the current decimal context's precision."""
    ca, ea = _coefficient_exponent(a)
    cb, eb = _coefficient_exponent(b)
    return Decimal(f"{ca * cb}E{ea + eb + shift}")


@dataclass(frozen=True, slots=True)
class Rates:
    """Unit prices charged for one request, in USD.

    ``*_mtok`` fields are USD per million tokens of that kind, each kind counted once:
    ``input_mtok`` for input that is neither a cache read nor a cache write,
    ``cache_write_mtok`` for cache writes without a 1-hour TTL (Anthropic's 5-minute writes),
    ``output_mtok`` for output that is not reasoning. ``request_kusd`` is USD per 1000
    requests. ``source`` says where the prices came from, for the ledger's audit trail.
    """

    input_mtok: Decimal
    cached_input_mtok: Decimal
    cache_write_mtok: Decimal
    cache_write_1h_mtok: Decimal
    output_mtok: Decimal
    reasoning_mtok: Decimal
    request_kusd: Decimal = ZERO
    source: str = ""
    # Derived in __post_init__ for ``cost``: the six token rates as integers of
    # 10**_exponent USD per token, and the request price in the same unit.
    _scaled: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _request_units: int = field(init=False, repr=False, compare=False)
    _exponent: int = field(init=False, repr=False, compare=False)
    _texts: tuple[str, ...] = field(init=False, repr=False, compare=False)  # ``as_dict``'s values

    def __post_init__(self) -> None:
        parts: list[tuple[int, int]] = []
        for name in PRICE_FIELDS:
            value = getattr(self, name)
            # A float here would mean money already rounded somewhere upstream.
            if not isinstance(value, Decimal):
                raise TypeError(f"Rates.{name} must be a Decimal, got {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise ValueError(f"Rates.{name} must be a finite, non-negative Decimal, got {value}")
            parts.append(_coefficient_exponent(value))
        places = max(0, *(-exponent for _, exponent in parts))
        scaled = [coefficient * 10 ** (exponent + places) for coefficient, exponent in parts]
        # Tokens are priced per million and requests per thousand: a request costs
        # request_kusd / 1000 = (request_kusd * 1000) / 1e6, so both share one exponent.
        object.__setattr__(self, "_scaled", tuple(scaled[:6]))
        object.__setattr__(self, "_request_units", scaled[6] * 1000)
        object.__setattr__(self, "_exponent", -(places + 6))
        # Every priced request stores its unit prices: formatted once, not per request.
        object.__setattr__(self, "_texts", tuple(format(getattr(self, name), "f") for name in PRICE_FIELDS))

    def as_dict(self) -> dict[str, str]:
        """The unit prices as plain decimal strings (no exponent), to store with a ledger event."""
        return dict(zip(PRICE_FIELDS, self._texts, strict=True))

    def discounted(self, percent: Decimal, source: str) -> Rates:
        """These prices times ``1 - percent/100``, computed exactly."""
        remaining_percent = Decimal(100) - percent
        values = {name: exact_product(getattr(self, name), remaining_percent, -2) for name in PRICE_FIELDS}
        return Rates(**values, source=source)


def cost(usage: Usage, rates: Rates) -> Decimal:
    """The exact USD cost of ``usage`` at ``rates``.

    Each token is charged once, at the rate of the most specific kind it belongs to, which is
    how genai-prices decomposes usage: uncached input, cache reads, 5-minute cache writes,
    1-hour cache writes, non-reasoning output, reasoning. A part larger than its whole
    (inconsistent provider usage) is charged as reported while the rest of the whole counts
    as zero, never negative; genai-prices would raise instead.
    """
    cached = usage.cached_input_tokens
    writes = usage.cache_write_tokens
    writes_1h = usage.cache_write_1h_tokens
    output = usage.output_tokens
    reasoning = usage.reasoning_tokens
    # A bitwise OR of ints is negative exactly when one of them is: one test instead of six.
    if (usage.input_tokens | cached | writes | writes_1h | output | reasoning) < 0:
        raise ValueError(f"negative token count in {usage!r}")
    input_rate, cached_rate, write_rate, write_1h_rate, output_rate, reasoning_rate = rates._scaled

    total = rates._request_units
    uncached = usage.input_tokens - cached - writes
    if uncached > 0:
        total += input_rate * uncached
    if cached:
        total += cached_rate * cached
    if writes or writes_1h:
        if writes > writes_1h:
            total += write_rate * (writes - writes_1h)
        total += write_1h_rate * writes_1h
    if output > reasoning:
        total += output_rate * (output - reasoning)
    if reasoning:
        total += reasoning_rate * reasoning
    if not total:
        return ZERO
    return Decimal(total).scaleb(rates._exponent, _EXACT)

"""What a FOCUS charge group is priced by, one meter per token kind (pure: totals in, figures out).

The kinds are those ``pricing.rates.cost`` charges at a rate of their own, each token counted
once at its most specific kind: uncached input, cache reads, 5-minute cache writes, 1-hour
cache writes, output that is not reasoning, and reasoning (its own rate, which defaults to the
output rate but need not equal it). A per-request price, when the list has one, is a meter too.
Splitting the same way as pricing is what lets ``ListUnitPrice x PricingQuantity`` be the
list cost of each row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from spendgate.finance.allocation import split
from spendgate.pricing.rates import Rates, exact_product


@dataclass(frozen=True)
class Meter:
    kind: str  # x_TokenKind
    unit: str  # PricingUnit, ConsumedUnit and SkuMeter: a FOCUS UnitFormat count unit
    rate: str  # the Rates field pricing it
    shift: int  # the rate is per 10**-shift units (per million tokens, per thousand requests)


TOKEN_METERS = (
    Meter("input", "Input Tokens", "input_mtok", -6),
    Meter("cached_input", "Cached Input Tokens", "cached_input_mtok", -6),
    Meter("cache_write_5m", "Cache Write Tokens", "cache_write_mtok", -6),
    Meter("cache_write_1h", "One Hour Cache Write Tokens", "cache_write_1h_mtok", -6),
    Meter("output", "Output Tokens", "output_mtok", -6),
    Meter("reasoning", "Reasoning Tokens", "reasoning_mtok", -6),
)
REQUEST_METER = Meter("requests", "Requests", "request_kusd", -3)


def token_quantities(totals: Mapping[str, int]) -> dict[Meter, int]:
    """A group's tokens per kind (only kinds it has), decomposed as ``rates.cost`` does: a part
    larger than its whole leaves the rest of the whole at 0, never negative."""
    input_tokens, cached, writes = totals["input_tokens"], totals["cached_input_tokens"], totals["cache_write_tokens"]
    writes_1h, output, reasoning = totals["cache_write_1h_tokens"], totals["output_tokens"], totals["reasoning_tokens"]
    counts = (
        max(input_tokens - cached - writes, 0),
        cached,
        max(writes - writes_1h, 0),
        writes_1h,
        max(output - reasoning, 0),
        reasoning,
    )
    return {meter: n for meter, n in zip(TOKEN_METERS, counts, strict=True) if n > 0}


def meter_quantities(totals: Mapping[str, int], priced_requests: int, rates: Rates | None) -> dict[Meter, int]:
    """The token kinds, plus the requests when the list charges per request."""
    quantities = token_quantities(totals)
    if quantities and rates is not None and rates.request_kusd > 0 and priced_requests > 0:
        quantities[REQUEST_METER] = priced_requests
    return quantities


def unit_price(meter: Meter, rates: Rates) -> Decimal:
    """USD per one unit (token or request) of ``meter`` at ``rates``, exact."""
    return exact_product(getattr(rates, meter.rate), Decimal(1), meter.shift)


def meter_cost(meter: Meter, quantity: int, rates: Rates) -> Decimal:
    """``quantity`` units of ``meter`` at ``rates``, exact."""
    return exact_product(Decimal(quantity), getattr(rates, meter.rate), meter.shift)


def split_by_list_weight(cost: Decimal, quantities: Mapping[Meter, int], rates: Rates | None) -> dict[Meter, Decimal]:
    """``cost`` shared by each meter's list cost (its quantity when there is no list price, or
    every list cost is 0): the shares sum to ``cost`` exactly (allocation's largest remainder)."""
    weights = {m.kind: meter_cost(m, q, rates) for m, q in quantities.items()} if rates is not None else {}
    if not any(weights.values()):
        weights = {m.kind: Decimal(q) for m, q in quantities.items()}
    shares = split(cost, weights)
    return {meter: shares[meter.kind] for meter in quantities}

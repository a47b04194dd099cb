"""Microseconds per call: PriceBook.price (cached) vs genai_prices.calc_price.

Run: python bench/bench_pricing.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from datetime import UTC, datetime

import genai_prices

from spendgate.pricing import PriceBook, cost
from spendgate.usage.model import Usage

AT = datetime(2026, 1, 15, 12, tzinfo=UTC)
CASES = [
    ("openai", "gpt-4o-2024-08-06", Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=200)),
    (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        Usage(
            input_tokens=250_000,
            cached_input_tokens=200_000,
            cache_write_tokens=30_000,
            cache_write_1h_tokens=10_000,
            output_tokens=1500,
        ),
    ),
]


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def bench_case(book: PriceBook, provider: str, model: str, usage: Usage) -> None:
    priced = book.price(provider, model, usage, AT)
    assert priced is not None
    genai_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )

    def reference() -> object:
        return genai_prices.calc_price(genai_usage, model, provider_id=provider, genai_request_timestamp=AT)

    def miss() -> None:
        book.clear_cache()
        book.price(provider, model, usage, AT)

    assert reference().total_price == priced.cost  # type: ignore[attr-defined]
    rates = priced.rates
    hit_us = per_call_us(lambda: book.price(provider, model, usage, AT), 100_000)
    cost_us = per_call_us(lambda: cost(usage, rates), 100_000)
    miss_us = per_call_us(miss, 500)
    reference_us = per_call_us(reference, 2_000)
    label = f"{provider}/{model}"
    print(f"{label:<40}{hit_us:>14.2f} µs{cost_us:>11.2f} µs{miss_us:>10.1f} µs{reference_us:>10.1f} µs")


def main() -> None:
    book = PriceBook()
    print(f"{'case':<40}{'PriceBook.price':>17}{'  cost() only':>14}{'  cache miss':>13}{'  calc_price':>13}")
    for provider, model, usage in CASES:
        bench_case(book, provider, model, usage)


if __name__ == "__main__":
    main()

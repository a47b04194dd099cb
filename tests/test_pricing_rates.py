"""Rates and cost(): exact arithmetic, hand-computed figures, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext

import pytest

from spendgate.pricing import PriceBook, Rates, cost
from spendgate.usage.model import Usage

AT = datetime(2026, 1, 15, 12, tzinfo=UTC)
D = Decimal


def rates(**kw: Decimal) -> Rates:
    values = {
        "input_mtok": D("2"),
        "cached_input_mtok": D("0.5"),
        "cache_write_mtok": D("2.5"),
        "cache_write_1h_mtok": D("4"),
        "output_mtok": D("8"),
        "reasoning_mtok": D("9"),
    }
    values.update(kw)
    return Rates(**values, source="test")


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_gpt_4o_by_hand(book: PriceBook) -> None:
    # 600 uncached x $2.50 + 400 cached x $1.25 + 200 output x $10, per million.
    priced = book.price("openai", "gpt-4o", Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=200), AT)
    assert priced is not None
    assert priced.cost == D("0.004")
    assert priced.rates.source == "genai-prices 0.2.3 openai/gpt-4o"


def test_claude_3_5_haiku_cache_reads_and_both_cache_write_ttls_by_hand(book: PriceBook) -> None:
    # input_tokens counts every input token: 100 uncached + 2000 cache reads + 500 cache writes,
    # of which 200 with a 1-hour TTL. $0.80 input, $0.08 read, $1 5m write, $1.60 1h write, $4 out:
    # 100*0.8 + 2000*0.08 + 300*1 + 200*1.6 + 300*4 = 80 + 160 + 300 + 320 + 1200 = 2060 per million.
    usage = Usage(
        input_tokens=100 + 2000 + 500,
        cached_input_tokens=2000,
        cache_write_tokens=500,
        cache_write_1h_tokens=200,
        output_tokens=300,
    )
    priced = book.price("anthropic", "claude-3-5-haiku-20241022", usage, AT)
    assert priced is not None
    assert priced.cost == D("0.00206")
    # The same writes all with the 5-minute TTL: 80 + 160 + 500 + 1200 = 1940 per million.
    usage_5m = Usage(input_tokens=2600, cached_input_tokens=2000, cache_write_tokens=500, output_tokens=300)
    assert book.price("anthropic", "claude-3-5-haiku-20241022", usage_5m, AT).cost == D("0.00194")


def test_claude_sonnet_4_5_cliff_tier_above_200k_input_tokens(book: PriceBook) -> None:
    at_threshold = book.price("anthropic", "claude-sonnet-4-5-20250929", Usage(200_000, output_tokens=1000), AT)
    above = book.price("anthropic", "claude-sonnet-4-5-20250929", Usage(200_001, output_tokens=1000), AT)
    assert at_threshold.cost == D("0.615")  # 200000 * $3 + 1000 * $15
    assert above.cost == D("1.222506")  # every token at the tier: 200001 * $6 + 1000 * $22.50
    assert above.rates.source.endswith("[input tokens > 200000]")
    # Cache reads count toward the threshold: input_tokens includes them.
    cached = book.price("anthropic", "claude-sonnet-4-5", Usage(200_001, cached_input_tokens=200_000), AT)
    assert cached.cost == D("0.000006") + D("0.12")  # 1 * $6 + 200000 * $0.60


def test_reasoning_is_charged_at_the_output_rate_when_unpriced(book: PriceBook) -> None:
    priced = book.price("openai", "o3", Usage(input_tokens=10, output_tokens=100, reasoning_tokens=90), AT)
    assert priced.rates.reasoning_mtok == priced.rates.output_mtok == D("8")
    assert priced.cost == D("0.00082")  # 10 * $2 + 100 * $8


def test_cost_counts_each_token_once_at_its_most_specific_rate() -> None:
    usage = Usage(
        input_tokens=1000,
        cached_input_tokens=300,
        cache_write_tokens=200,
        cache_write_1h_tokens=50,
        output_tokens=70,
        reasoning_tokens=20,
    )
    # 500*2 + 300*0.5 + 150*2.5 + 50*4 + 50*8 + 20*9 = 1000+150+375+200+400+180 = 2305
    assert cost(usage, rates()) == D("0.002305")


def test_request_price_is_per_thousand_requests_and_charged_even_without_tokens() -> None:
    assert cost(Usage(), rates(request_kusd=D("12"))) == D("0.012")
    assert cost(Usage(input_tokens=1000), rates(request_kusd=D("12"))) == D("0.014")


def test_zero_usage_costs_exactly_zero() -> None:
    assert cost(Usage(), rates()) == 0
    assert str(cost(Usage(), rates())) == "0"


def test_cost_is_exact_whatever_the_decimal_context() -> None:
    usage = Usage(input_tokens=987_654_321_987, output_tokens=123_456_789_123)
    exact = D("987654321987") * D("1.23456789") + D("123456789123") * D("9.87654321")
    with localcontext() as ctx:
        ctx.prec = 3  # a careless library could do this; money must not round
        result = cost(usage, rates(input_mtok=D("1.23456789"), output_mtok=D("9.87654321")))
    with localcontext() as ctx:
        ctx.prec = 60
        assert result == exact / 1_000_000
    assert isinstance(result, Decimal)


def test_inconsistent_usage_is_never_charged_negative() -> None:
    # More cache reads than input tokens: reads charged as reported, no negative uncached part.
    assert cost(Usage(input_tokens=10, cached_input_tokens=20), rates()) == D("0.00001")
    # More 1h writes than writes, more reasoning than output.
    assert cost(Usage(input_tokens=5, cache_write_tokens=5, cache_write_1h_tokens=6), rates()) == D("0.000024")
    assert cost(Usage(output_tokens=1, reasoning_tokens=2), rates()) == D("0.000018")


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        cost(Usage(input_tokens=-1), rates())
    with pytest.raises(ValueError, match="negative"):
        cost(Usage(output_tokens=5, reasoning_tokens=-1), rates())


def test_rates_refuse_floats_negatives_and_non_finite() -> None:
    with pytest.raises(TypeError, match="input_mtok must be a Decimal"):
        rates(input_mtok=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_mtok"):
        rates(output_mtok=D("-1"))
    with pytest.raises(ValueError, match="request_kusd"):
        rates(request_kusd=D("NaN"))
    with pytest.raises(ValueError, match="cached_input_mtok"):
        rates(cached_input_mtok=D("Infinity"))


def test_as_dict_is_decimal_strings_without_exponents() -> None:
    r = rates(input_mtok=D("1E+1"), cached_input_mtok=D("1E-7"), output_mtok=D("2.50"))
    assert r.as_dict() == {
        "input_mtok": "10",
        "cached_input_mtok": "0.0000001",
        "cache_write_mtok": "2.5",
        "cache_write_1h_mtok": "4",
        "output_mtok": "2.50",
        "reasoning_mtok": "9",
        "request_kusd": "0",
    }


def test_discounted_is_exact() -> None:
    r = rates(input_mtok=D("2.5"), output_mtok=D("10"), request_kusd=D("3")).discounted(D("15"), "15% off")
    assert (r.input_mtok, r.output_mtok, r.request_kusd) == (D("2.125"), D("8.5"), D("2.55"))
    assert r.source == "15% off"
    third = rates(input_mtok=D("3")).discounted(D("33.3333"), "x")
    assert third.input_mtok == D("2.000001")

"""PriceSheet built from genai-prices ModelPrice shapes the bundled data does not (yet) use."""

from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest
from genai_prices.types import ModelPrice, Tier, TieredPrices

from spendgate.pricing import PriceSheet, cost
from spendgate.usage.model import Usage

D = Decimal


def genai_total(model_price: ModelPrice, usage: Usage) -> Decimal:
    genai_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        cache_write_5m_tokens=usage.cache_write_tokens - usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )
    return model_price.calc_price(genai_usage)["total_price"]


USAGES = [
    Usage(input_tokens=n, cached_input_tokens=n // 3, cache_write_tokens=n // 3, cache_write_1h_tokens=n // 5,
          output_tokens=77, reasoning_tokens=33)
    for n in (0, 1, 99, 100, 101, 150, 199, 200, 201, 299, 300, 301, 10_000)
]  # fmt: skip

SHAPES = {
    "every leaf priced": ModelPrice(
        input_mtok=D("1.1"),
        cache_read_mtok=D("0.11"),
        cache_write_mtok=D("1.3"),
        cache_write_5m_mtok=D("1.4"),
        cache_write_1h_mtok=D("2.2"),
        output_mtok=D("5"),
        output_reasoning_mtok=D("3.3"),
        requests_kcount=D("7"),
    ),
    "only input and output": ModelPrice(input_mtok=D("2"), output_mtok=D("6")),
    "input only (embeddings)": ModelPrice(input_mtok=D("0.02")),
    "tiers starting at different sizes per unit": ModelPrice(
        input_mtok=TieredPrices(base=D("1"), tiers=[Tier(start=300, price=D("3")), Tier(start=100, price=D("2"))]),
        cache_read_mtok=TieredPrices(base=D("0.1"), tiers=[Tier(start=200, price=D("0.2"))]),
        cache_write_mtok=D("1.25"),
        output_mtok=TieredPrices(base=D("4"), tiers=[Tier(start=100, price=D("8"))]),
    ),
    "a tier from zero tokens": ModelPrice(
        input_mtok=TieredPrices(base=D("1"), tiers=[Tier(start=0, price=D("9"))]), output_mtok=D("2")
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_sheet_equals_genai_prices(shape: str) -> None:
    model_price = SHAPES[shape]
    sheet = PriceSheet.from_model_price(model_price, source="s")
    assert sheet is not None
    for usage in USAGES:
        assert cost(usage, sheet.rates_for(usage)) == genai_total(model_price, usage), usage


def test_tier_boundaries_are_the_union_of_all_units_starts() -> None:
    sheet = PriceSheet.from_model_price(SHAPES["tiers starting at different sizes per unit"], source="s")
    assert [start for start, _ in sheet.tiers] == [100, 200, 300]
    picked = {n: sheet.rates_for(Usage(input_tokens=n)) for n in (100, 101, 201, 301)}
    assert [(r.input_mtok, r.cached_input_mtok, r.output_mtok) for r in picked.values()] == [
        (D(1), D("0.1"), D(4)),
        (D(2), D("0.1"), D(8)),
        (D(2), D("0.2"), D(8)),
        (D(3), D("0.2"), D(8)),
    ]
    assert picked[201].source == "s [input tokens > 200]"


def test_fallbacks_to_parent_prices() -> None:
    rates = PriceSheet.from_model_price(ModelPrice(input_mtok=D("2"), output_mtok=D("6")), source="s").base
    assert (rates.cached_input_mtok, rates.cache_write_mtok, rates.cache_write_1h_mtok) == (D(2), D(2), D(2))
    assert rates.reasoning_mtok == D(6) and rates.request_kusd == 0
    anthropic_like = ModelPrice(input_mtok=D("3"), cache_write_mtok=D("3.75"), output_mtok=D("15"))
    assert PriceSheet.from_model_price(anthropic_like, source="s").base.cache_write_1h_mtok == D("3.75")


def test_models_priced_only_in_other_units_are_unpriced_and_no_prices_is_free() -> None:
    assert PriceSheet.from_model_price(ModelPrice(audio_hours=D("0.36")), source="s") is None
    assert PriceSheet.from_model_price(ModelPrice(input_mchars=D("15")), source="s") is None
    free = PriceSheet.from_model_price(ModelPrice(), source="s")
    assert free is not None and cost(Usage(input_tokens=10**6, output_tokens=5), free.rates_for(Usage())) == 0

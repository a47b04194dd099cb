"""The fast path prices exactly as genai_prices.calc_price does, for every model we ship."""

from __future__ import annotations

import random
import zlib
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import genai_prices
import pytest
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import (
    ClauseEquals,
    ClauseOr,
    ClauseStartsWith,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TimeOfDateConstraint,
)

from spendgate.pricing import PriceBook, PriceSheet, cost
from spendgate.usage.model import Usage

# Models of these providers are all checked; deepseek (time-of-day prices) and perplexity
# (per-request and reasoning prices) exercise units openai/anthropic data does not use.
PROVIDERS = ("openai", "anthropic", "deepseek", "perplexity")
BOOK_IDS = {provider: provider for provider in PROVIDERS}
DEFAULT_AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

USAGES = [
    Usage(),
    Usage(input_tokens=1),
    Usage(output_tokens=1),
    Usage(input_tokens=1000, output_tokens=200),
    Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=200),
    Usage(input_tokens=1000, cached_input_tokens=1000, output_tokens=3),
    Usage(input_tokens=2600, cached_input_tokens=2000, cache_write_tokens=500, output_tokens=300),
    Usage(
        input_tokens=2600,
        cached_input_tokens=2000,
        cache_write_tokens=500,
        cache_write_1h_tokens=200,
        output_tokens=300,
    ),
    Usage(input_tokens=5000, cache_write_tokens=5000, cache_write_1h_tokens=5000, output_tokens=1),
    Usage(input_tokens=1234, output_tokens=5678, reasoning_tokens=4000),
    Usage(output_tokens=7, reasoning_tokens=7),
    Usage(
        input_tokens=3,
        cached_input_tokens=1,
        cache_write_tokens=1,
        cache_write_1h_tokens=1,
        output_tokens=9,
        reasoning_tokens=4,
    ),
    # Around every tier start in the data (100k, 200k, 272k): a start is exceeded only above it.
    *(
        Usage(
            input_tokens=n,
            cached_input_tokens=n // 2,
            cache_write_tokens=n // 4,
            cache_write_1h_tokens=n // 8,
            output_tokens=4321,
            reasoning_tokens=1234,
        )
        for n in (99_999, 100_000, 100_001, 199_999, 200_000, 200_001, 272_000, 272_001, 1_000_000)
    ),
    Usage(input_tokens=200_001, output_tokens=1000),
    Usage(
        input_tokens=987_654_321,
        cached_input_tokens=123_456_789,
        output_tokens=55_555_555,
        reasoning_tokens=5,
    ),
]


def genai_usage(usage: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        cache_write_5m_tokens=usage.cache_write_tokens - usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


def random_usages(seed: int, count: int) -> list[Usage]:
    rng = random.Random(seed)
    usages = []
    for _ in range(count):
        cached = rng.choice([0, rng.randrange(0, 300_000)])
        writes = rng.choice([0, rng.randrange(0, 100_000)])
        writes_1h = rng.choice([0, writes, rng.randrange(0, writes + 1)])
        uncached = rng.choice([0, rng.randrange(0, 300_000)])
        output = rng.randrange(0, 50_000)
        reasoning = rng.choice([0, output, rng.randrange(0, output + 1)])
        usages.append(Usage(uncached + cached + writes, cached, writes, writes_1h, output, reasoning))
    return usages


def all_models() -> list[tuple[Provider, ModelInfo]]:
    snapshot = get_snapshot()
    return [(p, m) for p in snapshot.providers if p.id in PROVIDERS for m in p.models]


def instants(model: ModelInfo) -> list[datetime]:
    """A default instant plus both sides of every price change of the model."""
    result = [DEFAULT_AT]
    if isinstance(model.prices, list):
        for conditional in model.prices:
            constraint = conditional.constraint
            if isinstance(constraint, StartDateConstraint):
                start = datetime.combine(constraint.start_date, time(), UTC)
                result += [start - timedelta(microseconds=1), start, start + timedelta(hours=13)]
            elif isinstance(constraint, TimeOfDateConstraint):
                for moment in (constraint.start_time, constraint.end_time):
                    edge = datetime.combine(date(2026, 1, 15), moment.replace(tzinfo=None), UTC)
                    result += [edge - timedelta(microseconds=1), edge]
    return result


def reference_name(provider: Provider, model: ModelInfo) -> str:
    """A name genai-prices resolves to ``model``: its id, else a name from its match rules."""

    def names(clause: object) -> list[str]:
        if isinstance(clause, ClauseEquals):
            return [clause.equals]
        if isinstance(clause, ClauseStartsWith):
            return [clause.starts_with + "2024-05-13"]
        if isinstance(clause, ClauseOr):
            return [name for inner in clause.or_ for name in names(inner)]
        return []

    return next(name for name in [model.id, *names(model.match)] if provider.find_model(name) is model)


def token_priced(model_price: ModelPrice) -> bool:
    keys = {k for k, v in vars(model_price).items() if v is not None}
    in_scope = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "requests_kcount"}
    return not keys or bool(keys & in_scope)


MODELS = all_models()


def test_the_data_has_what_these_tests_rely_on() -> None:
    ids = {(p.id, m.id) for p, m in MODELS}
    assert len([1 for p, _ in MODELS if p.id == "openai"]) > 100
    assert len([1 for p, _ in MODELS if p.id == "anthropic"]) > 20
    assert {("anthropic", "claude-sonnet-4-5"), ("openai", "o3"), ("deepseek", "deepseek-chat")} <= ids
    assert ("perplexity", "sonar") in ids and ("perplexity", "sonar-deep-research") in ids


@pytest.mark.parametrize(("provider", "model"), MODELS, ids=[f"{p.id}/{m.id}" for p, m in MODELS])
def test_every_model_sheet_equals_calc_price(provider: Provider, model: ModelInfo) -> None:
    """Each model, each of its price periods, each usage: Decimal-equal to genai-prices."""
    usages = USAGES + random_usages(zlib.crc32(model.id.encode()), 25)
    for at in instants(model):
        model_price = model.get_prices(at)
        sheet = PriceSheet.from_model_price(model_price, source="test")
        if sheet is None:
            assert not token_priced(model_price), "a token-priced model must get a sheet"
            continue
        for usage in usages:
            expected = model.calc_price(genai_usage(usage), provider, genai_request_timestamp=at).total_price
            got = cost(usage, sheet.rates_for(usage))
            assert got == expected, (at, usage, sheet.rates_for(usage))


@pytest.mark.parametrize(("provider", "model"), MODELS, ids=[f"{p.id}/{m.id}" for p, m in MODELS])
def test_every_model_through_the_book_by_name_equals_calc_price(provider: Provider, model: ModelInfo) -> None:
    """The same through PriceBook, looked up by name as a client would send it (without the
    supplement, which adds what genai-prices lacks: tested below and in test_pricing_supplement)."""
    book = PriceBook(genai_provider_ids=BOOK_IDS, supplement=())
    name = reference_name(provider, model)
    for at in instants(model):
        for usage in USAGES:
            priced = book.price(provider.id, name, usage, at)
            calc = genai_prices.calc_price(
                genai_usage(usage), name, provider_id=provider.id, genai_request_timestamp=at
            )
            assert calc.model is model
            if priced is None:
                assert not token_priced(calc.model_price)
                continue
            assert priced.cost == calc.total_price, (at, usage)
            assert isinstance(priced.cost, Decimal)


def test_every_openai_and_anthropic_model_is_priced_unless_it_has_no_token_prices() -> None:
    book = PriceBook()
    unpriced = {
        m.id
        for p, m in MODELS
        if p.id in ("openai", "anthropic") and book.sheet(p.id, reference_name(p, m), DEFAULT_AT) is None
    }
    # Speech models priced by audio hours or characters, which Usage does not count.
    assert unpriced == {
        "gpt-live-1",
        "gpt-live-transcribe",
        "gpt-realtime-translate",
        "gpt-realtime-whisper",
        "gpt-transcribe",
        "whisper-1",
        "tts-1",
        "tts-1-hd",
    }


# --- service tiers: genai-prices' price variants ---------------------------------------------

VARIANT_MODELS = [(p, m) for p, m in MODELS if m.price_variants]


def variant_tiers(model: ModelInfo) -> list[str]:
    """The service tiers a model has variants for, as the gateway names them."""
    tiers = set()
    for variant in model.price_variants or ():
        if variant.when == {"processing": "batch"}:
            tiers.add("batch")
        elif set(variant.when) == {"service_tier"} and variant.when["service_tier"] != "default":
            tiers.add(variant.when["service_tier"])
    return sorted(tiers)


def variant_instants(model: ModelInfo) -> list[datetime]:
    result = [*instants(model), datetime(2026, 12, 1, 12, tzinfo=UTC)]
    for variant in model.price_variants or ():
        if isinstance(variant.constraint, StartDateConstraint):
            start = datetime.combine(variant.constraint.start_date, time(), UTC)
            result += [start - timedelta(microseconds=1), start]
    return result


def test_the_data_has_tier_variants_for_openai_and_anthropic() -> None:
    tiers = {(p.id, tier) for p, m in VARIANT_MODELS for tier in variant_tiers(m)}
    assert {("openai", "flex"), ("openai", "priority"), ("openai", "batch"), ("anthropic", "batch")} <= tiers


@pytest.mark.parametrize(("provider", "model"), VARIANT_MODELS, ids=[f"{p.id}/{m.id}" for p, m in VARIANT_MODELS])
def test_every_service_tier_through_the_book_equals_calc_price(provider: Provider, model: ModelInfo) -> None:
    """Each tier a model lists, around each date its tier prices start: Decimal-equal to
    calc_price given that tier's price context, on one warm book (so cached windows hold too)."""
    book = PriceBook(genai_provider_ids=BOOK_IDS, supplement=())
    name = reference_name(provider, model)
    for tier in variant_tiers(model):
        context = {"processing": "batch"} if tier == "batch" else {"service_tier": tier}
        for at in sorted(variant_instants(model)):
            for usage in USAGES:
                priced = book.price(provider.id, name, usage, at, tier)
                calc = genai_prices.calc_price(
                    genai_usage(usage), name, provider_id=provider.id, genai_request_timestamp=at, price_context=context
                )
                if priced is None:
                    assert not token_priced(calc.model_price)
                    continue
                assert priced.cost == calc.total_price, (tier, at, usage)

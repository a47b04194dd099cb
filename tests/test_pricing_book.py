"""PriceBook: overrides over genai-prices, effective windows, names, and the cache."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import (
    ClauseEquals,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TimeOfDateConstraint,
)

from spendgate.pricing import PriceBook, PriceOverride, Rates
from spendgate.usage.model import Usage

D = Decimal
AT = datetime(2026, 1, 15, 12, tzinfo=UTC)
USAGE = Usage(input_tokens=1_000_000, output_tokens=1_000_000)  # cost = input + output price


def flat(input_mtok: str, output_mtok: str, source: str = "test") -> Rates:
    i, o = D(input_mtok), D(output_mtok)
    return Rates(i, i, i, i, o, o, source=source)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def genai_total(usage: Usage, model: str, provider: str, at: datetime) -> Decimal:
    genai_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
    )
    return genai_prices.calc_price(genai_usage, model, provider_id=provider, genai_request_timestamp=at).total_price


# --- genai-prices lookups ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "name", "genai_id"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own, older price
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "o3-2025-04-16", "o3"),
        ("openai", "o4-mini-2025-04-16", "o4-mini"),
        ("openai", "gpt-5-2025-08-07", "gpt-5"),
        ("openai", "gpt-5.2-20251211", "gpt-5.2"),  # compact date, normalized by genai-prices
        # Snapshot names genai-prices does not list: matched by us with the date stripped.
        ("openai", "gpt-5-search-api-2025-10-14", "gpt-5-search-api"),
        ("openai", "gpt-4o-mini-tts-2025-03-20", "gpt-4o-mini-tts"),
        ("openai", "gpt-image-1-2025-04-23", "gpt-image-1"),
        ("openai", "gpt-5-codex-2025-09-15", "gpt-5"),
        ("openai", "gpt-5.1-codex-2025-11-13", "gpt-5.1"),
        ("openai", "gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
        ("anthropic", "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("anthropic", "claude-opus-4-20250514", "claude-opus-4-0"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic", "claude-3-haiku-20240307", "claude-3-haiku"),
        ("anthropic", "claude-opus-5@20260101", "claude-opus-5"),  # Vertex AI style
        ("anthropic", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ],
)
def test_dated_snapshot_names_resolve(provider: str, name: str, genai_id: str) -> None:
    priced = PriceBook().price(provider, name, USAGE, AT)
    assert priced is not None
    assert priced.rates.source.startswith(f"genai-prices {genai_prices.__version__} {provider}/{genai_id}")


def test_a_date_stripped_match_says_so_in_its_source() -> None:
    sheet = PriceBook().sheet("openai", "gpt-5-search-api-2025-10-14", AT)
    assert sheet.base.source == "genai-prices 0.2.3 openai/gpt-5-search-api as gpt-5-search-api"


def test_names_are_case_insensitive_and_cached_as_given() -> None:
    book = PriceBook()
    lower = book.price("openai", "gpt-4o", USAGE, AT)
    assert book.price("OpenAI", "GPT-4o", USAGE, AT) == lower
    assert book.price("openai", "Claude-Sonnet-4-5", USAGE, AT) is None  # right name, wrong provider


def test_unknown_models_and_providers_are_unpriced() -> None:
    book = PriceBook()
    assert book.price("openai", "gpt-nonexistent", USAGE, AT) is None
    assert book.sheet("openai", "gpt-nonexistent", AT) is None  # cached miss, still None
    assert book.price("groq", "llama-3.1-8b-instant", USAGE, AT) is None  # not mapped: overrides only
    assert PriceBook(genai_provider_ids={"openai": None}).price("openai", "gpt-4o", USAGE, AT) is None


def test_a_configured_provider_priced_from_another_genai_provider() -> None:
    book = PriceBook(genai_provider_ids={"openai": "openai", "my-deepseek": "deepseek"})
    priced = book.price("my-deepseek", "deepseek-v3.2", USAGE, AT)
    assert priced.cost == D("0.572")  # 0.2288 + 0.3432
    assert priced.rates.source == "genai-prices 0.2.3 deepseek/deepseek-v3.2"


def test_naive_instants_are_refused_on_a_miss_and_on_a_hit() -> None:
    book = PriceBook()
    with pytest.raises(ValueError, match="timezone-aware"):
        book.price("openai", "gpt-4o", USAGE, datetime(2026, 1, 1))
    book.price("openai", "gpt-4o", USAGE, AT)
    with pytest.raises(ValueError, match="timezone-aware"):
        book.price("openai", "gpt-4o", USAGE, datetime(2026, 1, 1))


def test_instants_in_other_zones_are_the_same_instants() -> None:
    book = PriceBook()
    # o3's price dropped on 2025-06-10 (UTC): 23:30 at UTC-1 on the 9th is already the 10th.
    west = timezone(timedelta(hours=-1))
    before = book.price("openai", "o3", USAGE, datetime(2025, 6, 9, 22, 30, tzinfo=west))
    after = book.price("openai", "o3", USAGE, datetime(2025, 6, 9, 23, 30, tzinfo=west))
    assert (before.cost, after.cost) == (D(50), D(10))


# --- date-conditional and time-of-day genai prices --------------------------------------


def test_date_conditional_price_changes_at_utc_midnight_and_the_cache_follows() -> None:
    book = PriceBook()
    change = utc(2025, 6, 10)
    just_before = change - timedelta(microseconds=1)
    for at, expected in [
        (just_before, D(50)),
        (change, D(10)),
        (just_before, D(50)),
        (utc(2030, 1, 1), D(10)),
    ]:
        priced = book.price("openai", "o3", USAGE, at)
        assert priced.cost == expected == genai_total(USAGE, "o3", "openai", at)
    old, new = book.sheet("openai", "o3", just_before), book.sheet("openai", "o3", change)
    assert (old.valid_from, old.valid_until, new.valid_from, new.valid_until) == (None, change, change, None)
    assert new.base.source == "genai-prices 0.2.3 openai/o3 (from 2025-06-10)"
    assert old.base.source == "genai-prices 0.2.3 openai/o3"


def test_tiers_that_exist_only_in_one_price_period() -> None:
    # claude-opus-4-6: long-context tier above 200k until 2026-03-13, flat afterwards.
    book = PriceBook()
    usage = Usage(input_tokens=300_000, output_tokens=1000)
    for at in (utc(2026, 3, 12, 23), utc(2026, 3, 13), utc(2026, 3, 12, 1)):
        priced = book.price("anthropic", "claude-opus-4-6", usage, at)
        assert priced.cost == genai_total(usage, "claude-opus-4-6", "anthropic", at)
    assert book.price("anthropic", "claude-opus-4-6", usage, utc(2026, 3, 12)).cost == D("3.0375")
    assert book.price("anthropic", "claude-opus-4-6", usage, utc(2026, 3, 13)).cost == D("1.525")


def sweep(start: datetime, hours: int, step_minutes: int) -> list[datetime]:
    steps = hours * 60 // step_minutes
    return [start + timedelta(minutes=step_minutes * i) for i in range(steps + 1)]


@pytest.mark.parametrize("model", ["deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro"])
def test_time_of_day_prices_through_one_cached_book(model: str) -> None:
    """Peak/off-peak prices change twice a day: a cached window must end at the next change."""
    book = PriceBook(genai_provider_ids={"deepseek": "deepseek"})
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=250_000, output_tokens=1_000_000)
    # Across the days deepseek-v4-* also change price by date, every 7 minutes, both ways.
    instants = sweep(utc(2026, 8, 16, 0, 3), 72, 7)
    tick = timedelta(microseconds=1)
    edges = [utc(2026, 8, 17, hour, minute) for hour in (0, 1, 4, 6, 10, 16) for minute in (0, 30)]
    instants += edges + [edge - tick for edge in edges]
    instants += list(reversed(instants))
    for at in instants:
        assert book.price("deepseek", model, usage, at).cost == genai_total(usage, model, "deepseek", at), at


def test_time_of_day_window_bounds() -> None:
    book = PriceBook(genai_provider_ids={"deepseek": "deepseek"})
    # deepseek-chat: peak 00:30-16:30 UTC, off-peak otherwise.
    peak = book.sheet("deepseek", "deepseek-chat", utc(2026, 1, 15, 12))
    off_peak = book.sheet("deepseek", "deepseek-chat", utc(2026, 1, 15, 20))
    assert (peak.valid_from, peak.valid_until) == (utc(2026, 1, 15, 0, 30), utc(2026, 1, 15, 16, 30))
    assert (off_peak.valid_from, off_peak.valid_until) == (utc(2026, 1, 15, 16, 30), utc(2026, 1, 16, 0, 30))
    assert peak.base.input_mtok == D("0.27") and off_peak.base.input_mtok == D("0.135")
    assert peak.base.source == "genai-prices 0.2.3 deepseek/deepseek-chat (00:30-16:30 UTC)"


def synthetic_book() -> tuple[PriceBook, Provider, ModelInfo]:
    """A model with a night discount 22:00-06:00 at UTC+2 (wrapping midnight) from a start date."""
    plus_two = timezone(timedelta(hours=2))
    model = ModelInfo(
        id="night-owl",
        match=ClauseEquals(equals="night-owl"),
        prices=[
            ConditionalPrice(prices=ModelPrice(input_mtok=D("4"), output_mtok=D("16"))),
            ConditionalPrice(
                constraint=StartDateConstraint(start_date=date(2026, 5, 2)),
                prices=ModelPrice(input_mtok=D("3"), output_mtok=D("12")),
            ),
            ConditionalPrice(
                constraint=TimeOfDateConstraint(
                    start_time=time(22, tzinfo=plus_two), end_time=time(6, tzinfo=plus_two)
                ),
                prices=ModelPrice(input_mtok=D("1"), output_mtok=D("5")),
            ),
        ],
    )
    provider = Provider(id="synthetic", name="Synthetic", api_pattern="https://synthetic.invalid", models=[model])
    snapshot = DataSnapshot(providers=[provider], from_auto_update=False)
    return PriceBook(genai_provider_ids={"synth": "synthetic"}, snapshot=snapshot), provider, model


def test_synthetic_time_of_day_wrapping_midnight_in_another_zone() -> None:
    book, provider, model = synthetic_book()
    instants = sweep(utc(2026, 5, 1, 0, 1), 72, 5)
    instants += [utc(2026, 5, d, h) - timedelta(microseconds=e) for d in (1, 2, 3) for h in (0, 4, 20) for e in (0, 1)]
    instants += list(reversed(instants))
    for at in instants:
        expected = model.calc_price(
            genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000),
            provider,
            genai_request_timestamp=at,
        ).total_price
        assert book.price("synth", "Night-Owl", USAGE, at).cost == expected, at
    night = book.sheet("synth", "night-owl", utc(2026, 5, 2, 23))  # 01:00 at UTC+2
    assert (night.valid_from, night.valid_until) == (utc(2026, 5, 2, 20), utc(2026, 5, 3, 4))
    day = book.sheet("synth", "night-owl", utc(2026, 5, 2, 10))
    assert (day.valid_from, day.valid_until, day.base.input_mtok) == (
        utc(2026, 5, 2, 4),
        utc(2026, 5, 2, 20),
        3,
    )
    first_morning = book.sheet("synth", "night-owl", utc(2026, 5, 2, 1))  # still the night before
    assert (first_morning.valid_from, first_morning.valid_until) == (utc(2026, 5, 2), utc(2026, 5, 2, 4))


# --- overrides --------------------------------------------------------------------------


def test_override_window_before_inside_after_and_boundaries() -> None:
    override = PriceOverride(
        "openai",
        "gpt-4o",
        rates=flat("2", "8"),
        effective_from=utc(2026, 1, 1),
        effective_until=utc(2026, 7, 1),
    )
    book = PriceBook([override])
    list_price = D("12.5")  # gpt-4o: 2.50 + 10
    tick = timedelta(microseconds=1)
    cases = [
        (utc(2025, 12, 31), list_price),
        (utc(2026, 1, 1) - tick, list_price),
        (utc(2026, 1, 1), D(10)),  # effective_from is inclusive
        (utc(2026, 3, 1), D(10)),
        (utc(2026, 7, 1) - tick, D(10)),
        (utc(2026, 7, 1), list_price),  # effective_until is exclusive
        (utc(2027, 1, 1), list_price),
        (utc(2026, 3, 1), D(10)),
    ]
    for at, expected in cases:
        assert book.price("openai", "gpt-4o", USAGE, at).cost == expected, at
    inside = book.sheet("openai", "gpt-4o", utc(2026, 3, 1))
    assert (inside.valid_from, inside.valid_until) == (utc(2026, 1, 1), utc(2026, 7, 1))
    assert inside.covers(utc(2026, 1, 1)) and not inside.covers(utc(2026, 7, 1))
    assert inside.base is override.rates


def test_a_price_change_at_a_date_boundary_is_seen_from_a_warm_cache() -> None:
    old = PriceOverride("acme", "m", rates=flat("1", "2"), effective_until=utc(2026, 2, 1))
    new = PriceOverride("acme", "m", rates=flat("3", "4"), effective_from=utc(2026, 2, 1))
    book = PriceBook([old, new])
    at_old = utc(2026, 1, 31, 23, 59, 59)
    assert book.price("acme", "m", USAGE, at_old).cost == D(3)
    assert book.sheet("acme", "m", at_old) is book.sheet("acme", "m", at_old - timedelta(days=30))  # a hit
    assert book.price("acme", "m", USAGE, utc(2026, 2, 1)).cost == D(7)
    assert book.price("acme", "m", USAGE, at_old).cost == D(3)


def test_later_entries_win_when_both_are_in_effect() -> None:
    base = PriceOverride("acme", "m", rates=flat("1", "1", "base"))
    promo = PriceOverride(
        "acme",
        "m",
        rates=flat("0", "0", "promo"),
        effective_from=utc(2026, 3, 1),
        effective_until=utc(2026, 4, 1),
    )
    renegotiated = PriceOverride("acme", "m", rates=flat("2", "2", "new"), effective_from=utc(2026, 6, 1))
    book = PriceBook([base, promo, renegotiated])
    sources = [book.price("acme", "m", USAGE, utc(2026, month, 15)).rates.source for month in range(1, 9)]
    assert sources == ["base", "base", "promo", "base", "base", "new", "new", "new"]
    # An earlier entry that starts later still loses to a later entry in effect.
    book = PriceBook([renegotiated, base])
    assert book.price("acme", "m", USAGE, utc(2026, 7, 1)).rates.source == "base"
    # While the base alone is in effect, its window is cut at the promo's boundaries.
    sheet = PriceBook([base, promo]).sheet("acme", "m", utc(2026, 2, 1))
    assert (sheet.valid_from, sheet.valid_until) == (None, utc(2026, 3, 1))


def test_explicit_override_beats_the_list_price_and_prices_unknown_models() -> None:
    book = PriceBook(
        [
            PriceOverride("openai", "gpt-4o", rates=flat("1", "1")),
            PriceOverride("vllm", "llama-3-70b", rates=flat("0.5", "0.5")),
        ],
        genai_provider_ids={"openai": "openai", "anthropic": "anthropic", "vllm": None},
    )
    assert book.price("openai", "gpt-4o", USAGE, AT).cost == D(2)
    assert book.price("openai", "gpt-4o-2024-08-06", USAGE, AT).cost == D("12.5")  # exact names only
    assert book.price("vllm", "Llama-3-70B", USAGE, AT).cost == D(1)


def test_prefix_match() -> None:
    book = PriceBook([PriceOverride("openai", "ft:gpt-4o-mini*", rates=flat("0.3", "1.2"))])
    assert book.price("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123", USAGE, AT).cost == D("1.5")
    assert book.price("openai", "ft:gpt-4o-2024-08-06:acme::abc123", USAGE, AT).cost == D("18.75")  # list


def test_discount_applies_to_every_list_price_including_tiers() -> None:
    book = PriceBook([PriceOverride("anthropic", "claude-sonnet-4-5*", discount_percent=D(15), origin="p.toml#1")])
    usage = Usage(
        input_tokens=1000,
        cached_input_tokens=200,
        cache_write_tokens=300,
        cache_write_1h_tokens=100,
        output_tokens=50,
    )
    small = book.price("anthropic", "claude-sonnet-4-5-20250929", usage, AT)
    listed = PriceBook().price("anthropic", "claude-sonnet-4-5-20250929", usage, AT)
    assert small.cost == listed.cost * D("0.85")
    assert small.rates.input_mtok == D("2.55") and small.rates.cache_write_1h_mtok == D("5.1")
    assert small.rates.source == "overrides p.toml#1 (..) 15% off genai-prices 0.2.3 anthropic/claude-sonnet-4-5"
    large = book.price("anthropic", "claude-sonnet-4-5", Usage(input_tokens=300_000), AT)
    assert large.rates.input_mtok == D("5.1")  # the $6 tier, discounted
    assert large.rates.source.endswith("[input tokens > 200000]")


def test_discount_follows_a_date_conditional_list_price() -> None:
    book = PriceBook([PriceOverride("openai", "o3", discount_percent=D(50), effective_from=utc(2025, 1, 1))])
    assert book.price("openai", "o3", USAGE, utc(2025, 6, 9)).cost == D(25)
    assert book.price("openai", "o3", USAGE, utc(2025, 6, 10)).cost == D(5)
    assert book.price("openai", "o3", USAGE, utc(2024, 6, 10)).cost == D(50)  # before the discount
    sheet = book.sheet("openai", "o3", utc(2025, 3, 1))
    assert (sheet.valid_from, sheet.valid_until) == (utc(2025, 1, 1), utc(2025, 6, 10))


def test_a_discount_without_a_list_price_falls_back_to_earlier_entries() -> None:
    explicit = PriceOverride("vllm", "m", rates=flat("1", "1"))
    discount = PriceOverride("vllm", "m", discount_percent=D(10))
    assert PriceBook([discount]).price("vllm", "m", USAGE, AT) is None
    assert PriceBook([explicit, discount]).price("vllm", "m", USAGE, AT).cost == D(2)


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput_mtok = "1"\noutput_mtok = "2"\n')
    book = PriceBook.from_file(path)
    priced = book.price("openai", "gpt-4o", USAGE, AT)
    assert priced.cost == D(3)
    assert priced.rates.source == "overrides prices.toml#1 (..)"
    assert PriceBook.from_file(None).price("openai", "gpt-4o", USAGE, AT).cost == D("12.5")
    only_overrides = PriceBook.from_file(str(path), genai_provider_ids={})
    assert only_overrides.price("openai", "gpt-4o-mini", USAGE, AT) is None


def test_the_cache_is_bounded() -> None:
    book = PriceBook(cache_size=8)
    for i in range(50):
        assert book.sheet("openai", f"nonexistent-{i}", AT) is None
    assert len(book._cache) == 8
    assert book.price("openai", "gpt-4o", USAGE, AT).cost == D("12.5")
    assert len(book._cache) == 8
    book.clear_cache()
    assert not book._cache

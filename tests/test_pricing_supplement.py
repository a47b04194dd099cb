"""The supplement: reviewed prices genai-prices lacks (Claude Sonnet 4's long context), applied
between genai-prices and the overrides, and only until genai-prices has them."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices.data_snapshot import DataSnapshot, get_snapshot
from genai_prices.types import ModelPrice, Tier, TieredPrices

from spendgate.pricing import PriceBook, PriceFileError, load_supplement
from spendgate.pricing.supplement import parse_supplement
from spendgate.usage import Usage

D = Decimal
AT = datetime(2026, 1, 15, 12, tzinfo=UTC)
LONG = Usage(input_tokens=250_000, cached_input_tokens=50_000, output_tokens=10_000)
MTOK = D(1_000_000)
SUPPLEMENT = load_supplement()


def cost(book: PriceBook, model: str, usage: Usage, at: datetime = AT) -> tuple[Decimal, str]:
    priced = book.price("anthropic", model, usage, at)
    assert priced is not None
    return priced.cost, priced.rates.source


# --- the data ------------------------------------------------------------------------------


def test_every_entry_is_sourced_and_names_a_genai_prices_model() -> None:
    assert SUPPLEMENT, "the shipped supplement is empty: remove this module with it"
    providers = {p.id: p for p in get_snapshot().providers}
    for entry in SUPPLEMENT:
        assert entry.source.startswith("https://") and entry.read_on <= date.today()
        assert entry.provider in providers
        assert any(model.id == entry.model for model in providers[entry.provider].models), entry


def test_every_entry_is_still_needed_by_the_installed_genai_prices() -> None:
    """An entry whose model genai-prices now tiers itself is dead data: delete it (it is
    skipped at run time anyway, see below)."""
    providers = {p.id: p for p in get_snapshot().providers}
    for entry in SUPPLEMENT:
        model = next(m for m in providers[entry.provider].models if m.id == entry.model)
        at = entry.effective_from or AT
        prices = model.get_prices(at)
        assert not any(isinstance(v, TieredPrices) for v in vars(prices).values()), entry


def test_sonnet_4_long_context_entry_has_anthropics_published_rates() -> None:
    [entry] = [e for e in SUPPLEMENT if e.model == "claude-sonnet-4-0"]
    assert entry.effective_from == datetime(2025, 8, 12, tzinfo=UTC)  # the 1M-context beta
    [(start, prices)] = entry.tiers
    assert start == 200_000
    assert prices == {
        "input_mtok": D(6),
        "cached_input_mtok": D("0.60"),  # 0.1 x input
        "cache_write_mtok": D("7.50"),  # 1.25 x input
        "cache_write_1h_mtok": D(12),  # 2 x input
        "output_mtok": D("22.50"),
        "reasoning_mtok": D("22.50"),  # thinking is billed as output
    }


# --- pricing with it -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["claude-sonnet-4-20250514", "claude-sonnet-4-0", "claude-4-sonnet-20250514"])
def test_sonnet_4_over_200k_input_tokens_is_charged_the_long_context_rates(name: str) -> None:
    book = PriceBook()
    charged, source = cost(book, name, LONG)
    assert charged == (200_000 * D(6) + 50_000 * D("0.60") + 10_000 * D("22.50")) / MTOK
    assert "anthropic/claude-sonnet-4-0 + spendgate supplement#1 (https://docs.anthropic.com/" in source
    assert source.endswith(", read 2026-12-03) [input tokens > 200000]")
    # At and below the threshold, genai-prices' own base price, and no mention of the supplement.
    charged, source = cost(book, name, Usage(input_tokens=200_000, output_tokens=10_000))
    assert charged == (200_000 * D(3) + 10_000 * D(15)) / MTOK
    assert "supplement" not in source


def test_without_the_supplement_genai_prices_charges_the_base_rate() -> None:
    """What spendgate charged before: half of Anthropic's long-context input rate."""
    charged, _ = cost(PriceBook(supplement=()), "claude-sonnet-4-20250514", LONG)
    assert charged == (200_000 * D(3) + 50_000 * D("0.30") + 10_000 * D(15)) / MTOK


def test_the_entry_applies_from_its_date_and_a_warm_cache_sees_it() -> None:
    book = PriceBook()
    start = datetime(2025, 8, 12, tzinfo=UTC)
    before, _ = cost(book, "claude-sonnet-4-0", LONG, start - timedelta(microseconds=1))
    after, _ = cost(book, "claude-sonnet-4-0", LONG, start)
    assert before < after
    sheet = book.sheet("anthropic", "claude-sonnet-4-0", start - timedelta(days=3))
    assert sheet is not None and sheet.valid_until == start


def test_the_entry_is_skipped_once_genai_prices_has_a_tier_for_the_model() -> None:
    """An upgraded genai-prices that tiers Claude Sonnet 4 itself wins over the supplement."""
    snapshot = get_snapshot()
    providers = copy.deepcopy(snapshot.providers)
    anthropic = next(p for p in providers if p.id == "anthropic")
    sonnet_4 = next(m for m in anthropic.models if m.id == "claude-sonnet-4-0")
    assert isinstance(sonnet_4.prices, ModelPrice)
    sonnet_4.prices.input_mtok = TieredPrices(base=D(3), tiers=[Tier(start=200_000, price=D(7))])
    upgraded = DataSnapshot(providers=providers, from_auto_update=False)
    charged, source = cost(PriceBook(snapshot=upgraded), "claude-sonnet-4-20250514", LONG)
    # Every unit genai-prices did not tier stays at its base price: nothing of the supplement.
    assert charged == (200_000 * D(7) + 50_000 * D("0.30") + 10_000 * D(15)) / MTOK
    assert "supplement" not in source and source.endswith("[input tokens > 200000]")


def test_overrides_apply_over_the_supplement() -> None:
    from spendgate.pricing import PriceOverride

    discount = PriceOverride("anthropic", "claude-sonnet-4-*", discount_percent=D(10), origin="prices.toml#1")
    charged, source = cost(PriceBook([discount]), "claude-sonnet-4-20250514", LONG)
    assert charged == (200_000 * D(6) + 50_000 * D("0.60") + 10_000 * D("22.50")) / MTOK * D("0.9")
    assert source.startswith("overrides prices.toml#1 (..) 10% off genai-prices")
    assert "spendgate supplement#1" in source


def test_a_tier_genai_prices_has_no_price_for_gets_the_supplement_with_the_standard_price() -> None:
    priced = PriceBook().price("anthropic", "claude-sonnet-4-0", LONG, AT, "priority")
    assert priced is not None
    assert priced.cost == (200_000 * D(6) + 50_000 * D("0.60") + 10_000 * D("22.50")) / MTOK
    assert "(priority tier not listed: standard price) + spendgate supplement#1" in priced.rates.source


# --- the format ----------------------------------------------------------------------------

GOOD = """
[[price]]
provider = "anthropic"
model = "claude-x"
source = "https://example.com/pricing"
read_on = 2026-12-01
[[price.tier]]
above_input_tokens = 1000
input_mtok = "2"
cached_input_mtok = "0.2"
cache_write_mtok = "2.5"
cache_write_1h_mtok = "4"
output_mtok = "10"
reasoning_mtok = "10"
"""


def test_a_good_entry() -> None:
    [entry] = parse_supplement(Path("supplement.toml"), GOOD)
    assert (entry.provider, entry.model, entry.read_on, entry.origin) == (
        "anthropic",
        "claude-x",
        date(2026, 12, 1),
        "supplement#1",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('source = "https://example.com/pricing"', ""), "missing source"),
        (('source = "https://example.com/pricing"', 'source = "example.com"'), "must be the https:// address"),
        (("read_on = 2026-12-01", ""), "missing read_on"),
        (('reasoning_mtok = "10"', ""), "must name reasoning_mtok too"),
        (('model = "claude-x"', 'model = "claude-x"\ninput_mtok = "3"'), "unknown field(s) input_mtok"),
        (("above_input_tokens = 1000", "above_input_tokens = 1000.0"), "is not a whole number"),
    ],
)
def test_bad_entries_are_refused(change: tuple[str, str], message: str) -> None:
    with pytest.raises(
        PriceFileError, match=r"supplement.toml: price #1: .*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        parse_supplement(Path("supplement.toml"), GOOD.replace(*change))
    tierless = GOOD[: GOOD.index("[[price.tier]]")]
    with pytest.raises(PriceFileError, match="adds at least one tier"):
        parse_supplement(Path("supplement.toml"), tierless)

"""Tiers in the price book: service tiers (genai-prices variants, override entries for one tier)
and input-size tiers written in the overrides file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from spendgate.pricing import PriceBook, PriceFileError, Rates, load_overrides
from spendgate.usage import Usage, normalize_service_tier, request_service_tier

D = Decimal
AT = datetime(2026, 12, 1, 12, tzinfo=UTC)
MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)  # cost = input + output price
TIER_PRICES_FROM = datetime(2026, 10, 12, tzinfo=UTC)  # genai-prices' OpenAI tier prices start


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- normalizing tier names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tier"),
    [
        ("default", "standard"),
        ("auto", "standard"),
        ("standard", "standard"),
        ("standard_only", "standard"),
        ("on_demand", "standard"),
        ("DEFAULT", "standard"),
        ("fast", "priority"),
        ("priority", "priority"),
        ("flex", "flex"),
        (" Flex ", "flex"),
        ("batch", "batch"),
        ("scale", "scale"),
        (None, None),
        ("", None),
        (3, None),
        (["flex"], None),
        ("x" * 40, None),  # hostile upstream: never stored
        ("flex; drop table", None),
    ],
)
def test_service_tier_names(raw: object, tier: str | None) -> None:
    assert normalize_service_tier(raw) == tier
    assert request_service_tier({"service_tier": raw}) == tier


def test_request_service_tier_of_odd_bodies() -> None:
    assert request_service_tier({}) is None
    assert request_service_tier(None) is None
    assert request_service_tier([1]) is None


# --- service tiers from genai-prices ---------------------------------------------------------


def test_flex_and_priority_are_charged_their_list_prices() -> None:
    book = PriceBook()
    standard = book.price("openai", "gpt-5", MILLION, AT)
    flex = book.price("openai", "gpt-5", MILLION, AT, "flex")
    priority = book.price("openai", "gpt-5", MILLION, AT, "priority")
    assert standard is not None and flex is not None and priority is not None
    assert (standard.cost, flex.cost, priority.cost) == (D("11.25"), D("5.625"), D("22.5"))
    assert standard.rates.source == f"genai-prices {genai_prices.__version__} openai/gpt-5"
    assert flex.rates.source.endswith("openai/gpt-5 (flex tier)")
    # "standard" and no tier at all are the same price.
    assert book.price("openai", "gpt-5", MILLION, AT, "standard") == standard


def test_a_tier_without_a_price_is_charged_standard_with_a_flag() -> None:
    book = PriceBook()
    standard = book.price("anthropic", "claude-haiku-4-5", MILLION, AT)
    priority = book.price("anthropic", "claude-haiku-4-5", MILLION, AT, "priority")
    assert standard is not None and priority is not None
    assert priority.cost == standard.cost == D(6)
    assert priority.rates.source.endswith("(priority tier not listed: standard price)")
    scale = book.price("openai", "gpt-4o", MILLION, AT, "scale")
    assert scale is not None and scale.rates.source.endswith("(scale tier not listed: standard price)")


def test_tier_prices_start_on_their_own_date_and_a_warm_cache_sees_it() -> None:
    book = PriceBook()
    before = TIER_PRICES_FROM - timedelta(microseconds=1)
    flex_before = book.price("openai", "gpt-5", MILLION, before, "flex")
    flex_after = book.price("openai", "gpt-5", MILLION, TIER_PRICES_FROM, "flex")
    assert flex_before is not None and flex_after is not None
    assert flex_before.cost == D("11.25") and "flex tier not listed" in flex_before.rates.source
    assert flex_after.cost == D("5.625")
    # The cached answer was bounded by that date.
    sheet = book.sheet("openai", "gpt-5", before, "flex")
    assert sheet is not None and sheet.valid_until == TIER_PRICES_FROM


def test_batch_is_its_own_variant() -> None:
    book = PriceBook()
    batch = book.price("anthropic", "claude-haiku-4-5", MILLION, AT, "batch")
    assert batch is not None and batch.cost == D(3)


def test_an_override_for_one_service_tier_prices_only_that_tier(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[price]]
provider = "anthropic"
model = "claude-haiku-4-5"
service_tier = "priority"
input_mtok = "1.5"
output_mtok = "7.5"

[[price]]
provider = "openai"
model = "gpt-5"
service_tier = "fast"          # OpenAI's name for priority
discount_percent = "10"
""",
    )
    book = PriceBook.from_file(path)
    priority = book.price("anthropic", "claude-haiku-4-5", MILLION, AT, "priority")
    assert priority is not None and priority.cost == D(9)
    assert priority.rates.source.startswith("overrides prices.toml#1")
    standard = book.price("anthropic", "claude-haiku-4-5", MILLION, AT)
    assert standard is not None and standard.cost == D(6)
    # A discount for one tier applies to that tier's list price.
    gpt5 = book.price("openai", "gpt-5", MILLION, AT, "priority")
    assert gpt5 is not None and gpt5.cost == D("20.25")
    assert book.price("openai", "gpt-5", MILLION, AT).cost == D("11.25")  # type: ignore[union-attr]


def test_an_override_without_a_service_tier_prices_every_tier(tmp_path: Path) -> None:
    path = write(tmp_path, '[[price]]\nprovider = "openai"\nmodel = "gpt-5"\ninput_mtok = "1"\noutput_mtok = "2"\n')
    book = PriceBook.from_file(path)
    for tier in (None, "flex", "priority"):
        assert book.price("openai", "gpt-5", MILLION, AT, tier).cost == D(3)  # type: ignore[union-attr]


# --- input-size tiers in the overrides file --------------------------------------------------

TIERED = """
[[price]]
provider = "local"
model = "big-*"
input_mtok = "3"
cached_input_mtok = "0.30"
output_mtok = "15"

[[price.tier]]
above_input_tokens = 200000
input_mtok = "6"
output_mtok = "22.50"

[[price.tier]]
above_input_tokens = 500_000
output_mtok = "30"
"""


def test_override_tiers_are_cliffs_on_total_input(tmp_path: Path) -> None:
    book = PriceBook.from_file(write(tmp_path, TIERED))

    def cost(input_tokens: int, cached: int = 0) -> Decimal:
        usage = Usage(input_tokens=input_tokens, cached_input_tokens=cached, output_tokens=1000)
        priced = book.price("local", "big-context", usage, AT)
        assert priced is not None
        return priced.cost

    assert cost(200_000) == (200_000 * D(3) + 1000 * D(15)) / 1_000_000
    # One token more, and EVERY token is charged at the tier (cache reads count toward it).
    assert cost(200_001, cached=100_000) == (100_001 * D(6) + 100_000 * D("0.30") + 1000 * D("22.50")) / 1_000_000
    assert cost(500_001) == (500_001 * D(6) + 1000 * D(30)) / 1_000_000


def test_tier_prices_carry_up_and_defaults_are_worked_out_again(tmp_path: Path) -> None:
    [entry] = load_overrides(write(tmp_path, TIERED))
    assert entry.rates is not None
    (first_start, first), (second_start, second) = entry.tiers
    assert (first_start, second_start) == (200_000, 500_000)
    # Named: changed. Cached input was given for the base, so it carries up as given; cache
    # writes were not, so they follow each tier's input price, and reasoning its output price.
    assert (first.input_mtok, first.cached_input_mtok, first.cache_write_mtok) == (D(6), D("0.30"), D(6))
    assert (first.output_mtok, first.reasoning_mtok) == (D("22.50"), D("22.50"))
    assert (second.input_mtok, second.output_mtok, second.reasoning_mtok) == (D(6), D(30), D(30))
    assert first.source == "overrides prices.toml#1 (..) [input tokens > 200000]"


def test_override_tiers_in_json(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"price": [{"provider": "local", "model": "m", "input_mtok": "1", "output_mtok": 2,'
        ' "tier": [{"above_input_tokens": 1000, "input_mtok": "2"}]}]}'
    )
    [entry] = load_overrides(path)
    assert [(start, rates.input_mtok, rates.output_mtok) for start, rates in entry.tiers] == [(1000, D(2), D(2))]


def test_discounts_still_apply_to_list_tiers(tmp_path: Path) -> None:
    path = write(tmp_path, '[[price]]\nprovider = "anthropic"\nmodel = "claude-sonnet-4-5"\ndiscount_percent = "50"\n')
    priced = PriceBook.from_file(path).price("anthropic", "claude-sonnet-4-5", Usage(input_tokens=300_000), AT)
    assert priced is not None and priced.cost == D("0.9")  # half of $6 / MTok


@pytest.mark.parametrize(
    ("tier_text", "message"),
    [
        ("input_mtok = '6'\n", "tier #1: missing above_input_tokens"),
        ("above_input_tokens = 200000\n", "tier #1: give at least one price"),
        ("above_input_tokens = 2.0e5\ninput_mtok = '6'\n", "tier #1: above_input_tokens = 2.0e5 is not a whole number"),
        ("above_input_tokens = '200000'\ninput_mtok = '6'\n", "tier #1: above_input_tokens must be a whole number"),
        ("above_input_tokens = 0\ninput_mtok = '6'\n", "tier #1: above_input_tokens must be positive"),
        ("above_input_tokens = true\ninput_mtok = '6'\n", "tier #1: above_input_tokens must be a whole number"),
        ("above_input_tokens = 200000\ninput_mtok = 6.5\n", "tier #1: input_mtok = 6.5 is a float"),
        ("above_input_tokens = 200000\ninput_mtok = '-6'\n", "tier #1: input_mtok must not be negative"),
        ("above_input_tokens = 200000\nprovider = 'x'\n", "tier #1: unknown field(s) provider"),
    ],
)
def test_bad_tiers_are_named(tmp_path: Path, tier_text: str, message: str) -> None:
    text = (
        '[[price]]\nprovider = "local"\nmodel = "m"\ninput_mtok = "3"\noutput_mtok = "15"\n[[price.tier]]\n' + tier_text
    )
    with pytest.raises(PriceFileError) as caught:
        load_overrides(write(tmp_path, text))
    assert str(caught.value).startswith(f"{tmp_path / 'prices.toml'}: price #1 (local/m): ")
    assert message in str(caught.value)


def test_tiers_must_ascend_and_go_with_prices(tmp_path: Path) -> None:
    base = '[[price]]\nprovider = "local"\nmodel = "m"\ninput_mtok = "3"\noutput_mtok = "15"\n'
    tier = "[[price.tier]]\nabove_input_tokens = {}\ninput_mtok = '6'\n"
    for starts in ((200_000, 100_000), (200_000, 200_000)):
        text = base + "".join(tier.format(start) for start in starts)
        with pytest.raises(PriceFileError, match="ascending order of above_input_tokens"):
            load_overrides(write(tmp_path, text))
    discount = '[[price]]\nprovider = "local"\nmodel = "m"\ndiscount_percent = "5"\n' + tier.format(1000)
    with pytest.raises(PriceFileError, match="a discount applies to every tier"):
        load_overrides(write(tmp_path, discount))
    with pytest.raises(PriceFileError, match='"tier" must be a list of tables'):
        load_overrides(write(tmp_path, base + "tier = 3\n"))


def test_the_old_way_of_asking_for_a_tier_points_to_the_new_one(tmp_path: Path) -> None:
    text = '[[price]]\nprovider = "anthropic"\nmodel = "m"\ninput_mtok = "3"\noutput_mtok = "15"\n'
    with pytest.raises(PriceFileError, match=r"\[\[price.tier\]\] tables with above_input_tokens"):
        load_overrides(write(tmp_path, text + 'input_mtok_above_200k = "6"\n'))


def test_a_bad_service_tier_is_refused(tmp_path: Path) -> None:
    text = '[[price]]\nprovider = "openai"\nmodel = "m"\nservice_tier = "two words"\n'
    text += 'input_mtok = "3"\noutput_mtok = "15"\n'
    with pytest.raises(PriceFileError, match="price #1 \\(openai/m\\): service_tier = 'two words' is not a tier name"):
        load_overrides(write(tmp_path, text))


def test_tiers_validate_when_built_in_code() -> None:
    from spendgate.pricing import PriceOverride

    r = Rates(D(1), D(1), D(1), D(1), D(1), D(1))
    with pytest.raises(ValueError, match="ascending"):
        PriceOverride("p", "m", rates=r, tiers=((10, r), (5, r)))
    with pytest.raises(ValueError, match="tiers need prices"):
        PriceOverride("p", "m", discount_percent=D(5), tiers=((10, r),))
    with pytest.raises(ValueError, match="normalized tier name"):
        PriceOverride("p", "m", rates=r, service_tier="default")


def test_the_readme_example_is_a_valid_overrides_file(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    prices_section = readme[readme.index("### Prices") :]
    example = re.search(r"```toml\n(.*?)```", prices_section, re.S)
    assert example is not None
    entries = load_overrides(write(tmp_path, example.group(1)))
    assert [entry.service_tier for entry in entries] == [None, None, "priority", None]
    assert [start for start, _ in entries[-1].tiers] == [200_000, 500_000]

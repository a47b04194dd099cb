"""The overrides file: format, defaults, and every way an entry can be wrong."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate.pricing import PriceFileError, PriceOverride, Rates, load_overrides

D = Decimal

FULL = """
[[price]]
provider = "openai"
model = "gpt-4o"
effective_from = "2026-01-01"
effective_until = "2026-07-01"
input_mtok = "2.00"
cached_input_mtok = "1.00"
cache_write_mtok = "2.50"
cache_write_1h_mtok = "4.00"
output_mtok = "8.00"
reasoning_mtok = "9.00"
request_kusd = "0.5"

[[price]]
provider = "Anthropic"
model = "Claude-*"
discount_percent = "15"
"""


def write(tmp_path: Path, text: str, name: str = "prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def entry(**fields: object) -> str:
    """One [[price]] entry in TOML, values given as TOML source text."""
    return "[[price]]\n" + "".join(f"{key} = {value}\n" for key, value in fields.items())


def test_full_example(tmp_path: Path) -> None:
    first, second = load_overrides(write(tmp_path, FULL))
    assert first == PriceOverride(
        provider="openai",
        model="gpt-4o",
        rates=Rates(
            input_mtok=D("2.00"),
            cached_input_mtok=D("1.00"),
            cache_write_mtok=D("2.50"),
            cache_write_1h_mtok=D("4.00"),
            output_mtok=D("8.00"),
            reasoning_mtok=D("9.00"),
            request_kusd=D("0.5"),
            source="overrides prices.toml#1 (2026-01-01..2026-07-01)",
        ),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        effective_until=datetime(2026, 7, 1, tzinfo=UTC),
        origin="prices.toml#1",
    )
    assert (second.provider, second.model, second.discount_percent, second.rates) == (
        "anthropic",
        "claude-*",
        D("15"),
        None,
    )
    assert second.origin == "prices.toml#2" and second.period == ".."


def test_optional_prices_default_to_their_parents(tmp_path: Path) -> None:
    (override,) = load_overrides(
        write(tmp_path, entry(provider='"acme"', model='"m"', input_mtok='"3"', output_mtok="12"))
    )
    r = override.rates
    assert r is not None
    assert (r.input_mtok, r.cached_input_mtok, r.cache_write_mtok, r.cache_write_1h_mtok) == (D(3),) * 4
    assert (r.output_mtok, r.reasoning_mtok, r.request_kusd) == (D(12), D(12), D(0))
    assert r.source == "overrides prices.toml#1 (..)"
    (with_write,) = load_overrides(
        write(
            tmp_path,
            entry(provider='"acme"', model='"m"', input_mtok="3", output_mtok="12", cache_write_mtok='"3.75"'),
        )
    )
    assert with_write.rates.cache_write_1h_mtok == D("3.75")


def test_json_file(tmp_path: Path) -> None:
    document = {
        "price": [
            {"provider": "openai", "model": "gpt-4o", "input_mtok": "2", "output_mtok": 8},
            {
                "provider": "openai",
                "model": "o3*",
                "discount_percent": 10,
                "effective_from": "2026-02-01T12:00Z",
            },
        ]
    }
    first, second = load_overrides(write(tmp_path, json.dumps(document), "prices.json"))
    assert first.rates.output_mtok == D(8) and first.rates.source.startswith("overrides prices.json#1")
    assert second.discount_percent == D(10)
    assert second.effective_from == datetime(2026, 2, 1, 12, tzinfo=UTC)
    assert second.period == "2026-02-01T12:00:00Z.."


def test_dates_toml_native_offsets_and_utc_default(tmp_path: Path) -> None:
    text = entry(
        provider='"p"',
        model='"m"',
        input_mtok="1",
        output_mtok="1",
        effective_from="2026-03-01",  # a TOML date, unquoted
        effective_until='"2026-03-02T02:00:00+02:00"',  # = midnight UTC
    ) + entry(provider='"p"', model='"m"', input_mtok="1", output_mtok="1", effective_from="2026-03-01T06:30:00")
    first, second = load_overrides(write(tmp_path, text))
    assert first.effective_from == datetime(2026, 3, 1, tzinfo=UTC)
    assert first.effective_until == datetime(2026, 3, 2, tzinfo=UTC)
    assert second.effective_from == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)  # naive means UTC


def test_empty_file_has_no_overrides(tmp_path: Path) -> None:
    assert load_overrides(write(tmp_path, "# nothing negotiated yet\n")) == ()


GOOD = {"provider": '"openai"', "model": '"gpt-4o"', "input_mtok": '"2"', "output_mtok": '"8"'}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inptu_mtok": '"2"'}, "unknown field(s) inptu_mtok"),
        ({"input_mtok": '"-2"'}, "input_mtok must not be negative"),
        ({"output_mtok": "-1"}, "output_mtok must not be negative"),
        ({"input_mtok": None}, "missing input_mtok"),
        ({"output_mtok": None}, "missing output_mtok"),
        ({"input_mtok": None, "output_mtok": None}, "missing input_mtok and output_mtok"),
        (
            {"input_mtok": "2.5"},
            'input_mtok = 2.5 is a float and money must be exact: quote it, input_mtok = "2.5"',
        ),
        ({"reasoning_mtok": "1e3"}, "reasoning_mtok = 1e3 is a float"),
        ({"input_mtok": "inf"}, "input_mtok = inf is a float"),
        ({"input_mtok": '"two"'}, "input_mtok = 'two' is not a decimal number"),
        ({"input_mtok": '"NaN"'}, "is not a finite number"),
        ({"input_mtok": "true"}, "input_mtok must be a decimal string or an integer"),
        ({"effective_from": '"2026-13-01"'}, "effective_from = '2026-13-01' is not a date"),
        ({"effective_until": '"next tuesday"'}, "effective_until = 'next tuesday' is not a date"),
        ({"effective_from": "12:00:00"}, "is not a date"),
        (
            {"effective_from": '"2026-07-01"', "effective_until": '"2026-01-01"'},
            "effective_until must be after",
        ),
        (
            {"effective_from": '"2026-07-01"', "effective_until": '"2026-07-01"'},
            "effective_until must be after",
        ),
        ({"discount_percent": '"10"'}, "give either prices (input_mtok, output_mtok) or discount_percent"),
        ({"input_mtok": None, "output_mtok": None, "discount_percent": '"120"'}, "from 0 to 100"),
        ({"input_mtok": None, "output_mtok": None, "discount_percent": "-5"}, "must not be negative"),
        ({"provider": None}, "missing provider"),
        ({"model": '""'}, "model must be a non-empty string"),
        ({"model": "4"}, "model must be a non-empty string"),
        ({"model": '"gpt-*-mini"'}, "a prefix and one trailing *"),
    ],
)
def test_each_invalid_entry_is_named_with_file_and_index(
    tmp_path: Path, changes: dict[str, str | None], message: str
) -> None:
    fields = {**GOOD, **changes}
    text = entry(**GOOD) + entry(**{k: v for k, v in fields.items() if v is not None})
    path = write(tmp_path, text)
    with pytest.raises(PriceFileError) as caught:
        load_overrides(path)
    assert caught.value.index == 2
    # The file, the entry's number and, when it names one, its provider/model.
    name = f" ({caught.value.entry})" if caught.value.entry else ""
    assert str(caught.value).startswith(f"{path}: price #2{name}: ")
    if "provider" not in message and "model" not in message and "trailing" not in message:
        assert caught.value.entry == "openai/gpt-4o"
    assert message in str(caught.value)


def test_json_floats_are_refused_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"price": [{"provider": "p", "model": "m", "input_mtok": 2.5, "output_mtok": 1}]}',
        "p.json",
    )
    with pytest.raises(PriceFileError, match=r'price #1 \(p/m\): input_mtok = 2.5 is a float .* input_mtok = "2.5"'):
        load_overrides(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("prices.yaml", "", "must end in .toml or .json"),
        ("prices.toml", "[[price]\n", "not valid TOML"),
        ("prices.json", "{", "not valid JSON"),
        ("prices.json", "[]", 'expected an object with a "price" list'),
        ("prices.toml", 'price = "x"\n', '"price" must be a list of entries'),
        ("prices.toml", "[[prices]]\nmodel = 'x'\n", "unknown top-level key(s) prices"),
        ("prices.json", '{"price": [3]}', "price #1: an entry must be a table"),
    ],
)
def test_whole_file_problems(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(PriceFileError, match=re.escape(message)):
        load_overrides(write(tmp_path, text, name))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read it") as caught:
        load_overrides(tmp_path / "absent.toml")
    assert caught.value.index is None


def test_price_override_validates_when_built_in_code() -> None:
    r = Rates(D(1), D(1), D(1), D(1), D(1), D(1))
    with pytest.raises(ValueError, match="not both"):
        PriceOverride("p", "m", rates=r, discount_percent=D(5))
    with pytest.raises(ValueError, match="not neither"):
        PriceOverride("p", "m")
    with pytest.raises(ValueError, match="timezone-aware"):
        PriceOverride("p", "m", rates=r, effective_from=datetime(2026, 1, 1))
    override = PriceOverride("OpenAI", "GPT-4o*", rates=r)
    assert override.matches("openai", "gpt-4o-mini") and not override.matches("openai", "gpt-4")
    assert not override.matches("anthropic", "gpt-4o")

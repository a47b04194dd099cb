"""The price overrides file (``SPENDGATE_PRICES``): negotiated rates, custom models, discounts.

TOML or JSON, chosen by the file's extension (``.toml`` / ``.json``). Each ``[[price]]`` entry
prices one model (or every model with a name prefix) of one provider::

    [[price]]
    provider = "openai"            # gateway provider name: openai, anthropic, or a configured
                                   # OpenAI-compatible provider's name
    model = "gpt-4o"               # model name as requested/reported, case-insensitive;
                                   # a trailing * matches every name with that prefix
    effective_from = "2026-01-01"  # optional, inclusive: a date or an RFC 3339 datetime
    effective_until = "2026-07-01" # optional, exclusive; UTC when no offset is given
    input_mtok = "2.00"            # USD per million tokens, as a string or an integer
    cached_input_mtok = "1.00"     # optional; defaults to input_mtok
    cache_write_mtok = "2.50"      # optional; defaults to input_mtok
    cache_write_1h_mtok = "4.00"   # optional; defaults to cache_write_mtok
    output_mtok = "8.00"
    reasoning_mtok = "8.00"        # optional; defaults to output_mtok
    request_kusd = "0"             # optional: USD per 1000 requests

    [[price]]                      # prices by input size: a tier applies to the WHOLE request
    provider = "local"             # when its input tokens (cached ones included) exceed the
    model = "big-context-model"    # tier's above_input_tokens ("cliff" tiers, as providers bill)
    input_mtok = "3"
    output_mtok = "15"
    [[price.tier]]
    above_input_tokens = 200000
    input_mtok = "6"               # a tier names the prices it changes; the others carry up
    output_mtok = "22.50"          # from below (defaults such as cached_input_mtok = input_mtok
                                   # are worked out again in the tier)

    [[price]]                      # only for requests served at one service tier
    provider = "openai"
    model = "gpt-4o"
    service_tier = "priority"      # standard, flex, priority, batch…; without it: every tier
    input_mtok = "4.25"
    output_mtok = "17"

    [[price]]                      # or a negotiated discount on the genai-prices list price
    provider = "anthropic"
    model = "claude-*"
    discount_percent = "15"        # every list price (each token kind, each tier) x (1 - 15/100)

Prices must be exact: write them as strings (``"2.50"``) or integers; decimal numbers such as
``2.5`` are refused because TOML and JSON readers turn them into binary floats.

When several entries match a request, the LAST one in the file that is in effect at the
request's time wins: append a new entry with a later ``effective_from`` to change a rate, and
history stays priced at the old one. An explicit price always applies as written; a discount
applies to the genai-prices list price, and is skipped when genai-prices has no price for that
model. A model no entry matches is priced from genai-prices.

In JSON the same entries are a list under ``"price"``: ``{"price": [{"provider": ...}, ...]}``,
tiers a list under ``"tier"`` in the entry. Entries are numbered from 1 in error messages and
price sources (``prices.toml#3``); an error names the file, the entry and its model.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path

from spendgate.pricing.rates import PRICE_FIELDS as _PRICE_FIELDS
from spendgate.pricing.rates import Rates
from spendgate.usage.service_tier import STANDARD, normalize_service_tier

__all__ = ("PriceFileError", "PriceOverride", "Tiers", "load_overrides")

_FIELDS = frozenset(
    {
        "provider",
        "model",
        "effective_from",
        "effective_until",
        "discount_percent",
        "service_tier",
        "tier",
        *_PRICE_FIELDS,
    }
)
_TIER_FIELDS = frozenset({"above_input_tokens", *_PRICE_FIELDS})
# (above_input_tokens, rates): rates charged when a request's input tokens exceed the first.
Tiers = tuple[tuple[int, Rates], ...]


class PriceFileError(ValueError):
    """The overrides file is unreadable or an entry in it is invalid."""

    def __init__(self, path: str | os.PathLike[str], index: int | None, problem: str, entry: str | None = None) -> None:
        self.path = str(path)
        self.index = index  # 1-based entry number; None for a problem with the whole file
        self.entry = entry  # "provider/model" of the entry, when it says
        self.problem = problem
        where = self.path if index is None else f"{self.path}: price #{index}"
        if entry:
            where += f" ({entry})"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One overrides entry: explicit ``rates`` or a ``discount_percent`` on the list price.

    ``model`` is matched case-insensitively; a trailing ``*`` makes it a prefix. The entry is
    in effect over ``[effective_from, effective_until)`` (None: unbounded). ``origin`` names
    the entry in price sources, e.g. ``prices.toml#3``. ``tiers`` (with ``rates`` only) are
    the rates of requests whose input tokens exceed each start, in ascending order.
    ``service_tier`` limits the entry to requests served at that tier (None: every tier).
    """

    provider: str
    model: str
    rates: Rates | None = None
    discount_percent: Decimal | None = None
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    origin: str = "override"
    tiers: Tiers = ()
    service_tier: str | None = None

    def __post_init__(self) -> None:
        if not self.provider:
            raise ValueError("provider must not be empty")
        if not self.model or "*" in self.model[:-1]:
            raise ValueError(f"model {self.model!r}: give a name, or a prefix and one trailing *")
        if (self.rates is None) == (self.discount_percent is None):
            raise ValueError("give either prices or discount_percent, not both and not neither")
        if self.tiers and self.rates is None:
            raise ValueError("tiers need prices of their own: a discount already applies to every tier")
        check_tier_starts([start for start, _ in self.tiers])
        if self.service_tier is not None and normalize_service_tier(self.service_tier) != self.service_tier:
            raise ValueError(f"service_tier {self.service_tier!r} is not a normalized tier name")
        if self.discount_percent is not None and not (
            isinstance(self.discount_percent, Decimal) and 0 <= self.discount_percent <= 100
        ):
            raise ValueError(f"discount_percent must be from 0 to 100, got {self.discount_percent!r}")
        for name in ("effective_from", "effective_until"):
            instant = getattr(self, name)
            if instant is not None and instant.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if (
            self.effective_from is not None
            and self.effective_until is not None
            and self.effective_until <= self.effective_from
        ):
            raise ValueError("effective_until must be after effective_from")
        object.__setattr__(self, "provider", self.provider.lower())
        object.__setattr__(self, "model", self.model.lower())

    def matches(self, provider: str, model: str) -> bool:
        """Whether this entry is for ``provider``/``model`` (both already lowercased)."""
        if provider != self.provider:
            return False
        if self.model.endswith("*"):
            return model.startswith(self.model[:-1])
        return model == self.model

    def serves(self, service_tier: str | None) -> bool:
        """Whether this entry prices requests served at ``service_tier`` (None: standard)."""
        return self.service_tier is None or self.service_tier == (service_tier or STANDARD)

    def in_effect(self, at: datetime) -> bool:
        return (self.effective_from is None or self.effective_from <= at) and (
            self.effective_until is None or at < self.effective_until
        )

    @property
    def period(self) -> str:
        """``2026-01-01..2026-07-01``, open ends left empty."""
        return _period(self.effective_from, self.effective_until)


def load_overrides(path: str | os.PathLike[str]) -> tuple[PriceOverride, ...]:
    """Read and validate an overrides file; raises ``PriceFileError`` on any problem."""
    path = Path(path)
    if path.suffix.lower() not in (".toml", ".json"):
        raise PriceFileError(path, None, "the overrides file must end in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PriceFileError(path, None, f"cannot read it: {e}") from e
    entries = read_entries(path, text)
    return tuple(_parse_entry(path, index, entry) for index, entry in enumerate(entries, start=1))


def read_entries(path: Path, text: str) -> list[object]:
    """The ``price`` entries of a TOML or JSON document (chosen by ``path``'s extension)."""
    suffix = path.suffix.lower()
    try:
        # Floats are kept as their text, so the error can quote what the user wrote.
        if suffix == ".toml":
            document = tomllib.loads(text, parse_float=_FloatText)
        else:
            document = json.loads(text, parse_float=_FloatText, parse_constant=_FloatText)
    except ValueError as e:  # tomllib.TOMLDecodeError and json.JSONDecodeError both are
        raise PriceFileError(path, None, f"not valid {suffix[1:].upper()}: {e}") from e

    if not isinstance(document, dict):
        raise PriceFileError(path, None, 'expected an object with a "price" list')
    unknown = sorted(set(document) - {"price"})
    if unknown:
        raise PriceFileError(path, None, f"unknown top-level key(s) {', '.join(unknown)}; entries go in [[price]]")
    entries = document.get("price", [])
    if not isinstance(entries, list):
        raise PriceFileError(path, None, '"price" must be a list of entries ([[price]] in TOML)')
    return entries


class _FloatText(str):
    """A number with a fraction or exponent, as written in the file: refused for money."""


_Fail = Callable[[str], PriceFileError]


def _parse_entry(path: Path, index: int, entry: object) -> PriceOverride:
    name = _entry_name(entry)

    def fail(problem: str) -> PriceFileError:
        return PriceFileError(path, index, problem, name)

    if not isinstance(entry, Mapping):
        raise fail("an entry must be a table of fields")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}{_tier_hint(unknown)}")
    provider = text_field(entry, "provider", fail)
    model = text_field(entry, "model", fail)
    effective_from = instant(entry, "effective_from", fail)
    effective_until = instant(entry, "effective_until", fail)
    service_tier = None
    if "service_tier" in entry:
        service_tier = normalize_service_tier(text_field(entry, "service_tier", fail))
        if service_tier is None:
            raise fail(f"service_tier = {entry['service_tier']!r} is not a tier name (standard, flex, priority…)")

    given = {name: money(entry[name], name, fail) for name in _PRICE_FIELDS if name in entry}
    discount = None
    if "discount_percent" in entry:
        discount = money(entry["discount_percent"], "discount_percent", fail)
    origin = f"{path.name}#{index}"
    rates = None
    tiers: Tiers = ()
    if discount is not None:
        if given:
            raise fail(f"give either prices ({', '.join(given)}) or discount_percent, not both")
        if "tier" in entry:
            raise fail("a discount applies to every tier of the list price already: give tiers with prices only")
    else:
        missing = [name for name in ("input_mtok", "output_mtok") if name not in given]
        if missing:
            raise fail(f"missing {' and '.join(missing)} (or give discount_percent instead)")
        source = f"overrides {origin} ({_period(effective_from, effective_until)})"
        rates = rates_from(given, source)
        tiers = tiers_over(given, parse_tiers(entry.get("tier", []), fail), source)
    try:
        return PriceOverride(
            provider, model, rates, discount, effective_from, effective_until, origin, tiers, service_tier
        )
    except ValueError as e:
        raise fail(str(e)) from e


def _entry_name(entry: object) -> str | None:
    """``provider/model`` of an entry, for error messages, when both are plain strings."""
    if not isinstance(entry, Mapping):
        return None
    provider, model = entry.get("provider"), entry.get("model")
    if not (isinstance(provider, str) and isinstance(model, str)) or isinstance(model, _FloatText):
        return None
    if not provider.strip() or not model.strip():
        return None
    return f"{provider.strip()}/{model.strip()}"[:120]


def _tier_hint(unknown: list[str]) -> str:
    if any("above" in name or "tier" in name or "_k_" in name for name in unknown):
        return "; prices by input size go in [[price.tier]] tables with above_input_tokens"
    return ""


def rates_from(given: Mapping[str, Decimal], source: str) -> Rates:
    """Rates from the prices an entry gives, the others defaulting to their parent's price."""
    input_mtok, output_mtok = given["input_mtok"], given["output_mtok"]
    cache_write_mtok = given.get("cache_write_mtok", input_mtok)
    return Rates(
        input_mtok=input_mtok,
        cached_input_mtok=given.get("cached_input_mtok", input_mtok),
        cache_write_mtok=cache_write_mtok,
        cache_write_1h_mtok=given.get("cache_write_1h_mtok", cache_write_mtok),
        output_mtok=output_mtok,
        reasoning_mtok=given.get("reasoning_mtok", output_mtok),
        request_kusd=given.get("request_kusd", Decimal(0)),
        source=source,
    )


def parse_tiers(raw: object, fail: _Fail) -> list[tuple[int, dict[str, Decimal]]]:
    """``[[price.tier]]`` tables as (above_input_tokens, the prices each names), validated."""
    if not isinstance(raw, list):
        raise fail('"tier" must be a list of tables ([[price.tier]] in TOML)')
    tiers: list[tuple[int, dict[str, Decimal]]] = []
    for number, table in enumerate(raw, start=1):

        def tier_fail(problem: str, number: int = number) -> PriceFileError:
            return fail(f"tier #{number}: {problem}")

        if not isinstance(table, Mapping):
            raise tier_fail("a tier must be a table of fields")
        unknown = sorted(set(table) - _TIER_FIELDS)
        if unknown:
            raise tier_fail(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TIER_FIELDS))}")
        start = _token_count(table.get("above_input_tokens"), tier_fail)
        prices = {name: money(table[name], name, tier_fail) for name in _PRICE_FIELDS if name in table}
        if not prices:
            raise tier_fail("give at least one price for requests above this size")
        tiers.append((start, prices))
    try:
        check_tier_starts([start for start, _ in tiers])
    except ValueError as e:
        raise fail(str(e)) from e
    return tiers


def tiers_over(base: Mapping[str, Decimal], tiers: list[tuple[int, dict[str, Decimal]]], source: str) -> Tiers:
    """The rates of each tier: the prices it names over those of the tiers below and ``base``
    (then the same defaults as the base: an unnamed cached_input_mtok follows the tier's input)."""
    given = dict(base)
    result = []
    for start, prices in tiers:
        given.update(prices)
        result.append((start, rates_from(given, f"{source} [input tokens > {start}]")))
    return tuple(result)


def check_tier_starts(starts: list[int]) -> None:
    for start in starts:
        if isinstance(start, bool) or not isinstance(start, int) or start < 1:
            raise ValueError(f"above_input_tokens must be a positive integer, got {start!r}")
    if any(later <= earlier for earlier, later in pairwise(starts)):
        raise ValueError(f"tiers must be in ascending order of above_input_tokens, got {starts}")


def _token_count(value: object, fail: _Fail) -> int:
    if value is None:
        raise fail("missing above_input_tokens (the input size above which the tier's prices apply)")
    if isinstance(value, _FloatText):
        raise fail(f"above_input_tokens = {value} is not a whole number of tokens")
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"above_input_tokens must be a whole number of tokens, got {value!r}")
    if value < 1:
        raise fail(f"above_input_tokens must be positive, got {value}")
    return value


def text_field(entry: Mapping[str, object], name: str, fail: _Fail) -> str:
    value = entry.get(name)
    if value is None:
        raise fail(f"missing {name}")
    if not isinstance(value, str) or isinstance(value, _FloatText) or not value.strip():
        raise fail(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def money(value: object, name: str, fail: _Fail) -> Decimal:
    if isinstance(value, _FloatText):
        raise fail(f'{name} = {value} is a float and money must be exact: quote it, {name} = "{value}"')
    if isinstance(value, bool):
        raise fail(f"{name} must be a decimal string or an integer, got {value!r}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise fail(f"{name} = {value!r} is not a decimal number") from None
    else:
        raise fail(f"{name} must be a decimal string or an integer, got {value!r}")
    if not amount.is_finite():
        raise fail(f"{name} = {value!r} is not a finite number")
    if amount < 0:
        raise fail(f"{name} must not be negative, got {value!r}")
    return amount


def instant(entry: Mapping[str, object], name: str, fail: _Fail) -> datetime | None:
    """A date (midnight UTC) or datetime (UTC when naive); TOML date/datetime values too."""
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, str) and not isinstance(value, _FloatText):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise fail(f"{name} = {value!r} is not a date (2026-01-01) or RFC 3339 datetime") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    raise fail(f"{name} = {value!r} is not a date (2026-01-01) or RFC 3339 datetime")


def _period(effective_from: datetime | None, effective_until: datetime | None) -> str:
    return f"{_format_instant(effective_from)}..{_format_instant(effective_until)}"


def _format_instant(instant: datetime | None) -> str:
    if instant is None:
        return ""
    instant = instant.astimezone(UTC)
    if instant.time() == time():
        return instant.date().isoformat()
    return instant.isoformat().replace("+00:00", "Z")

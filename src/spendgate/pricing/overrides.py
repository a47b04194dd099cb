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

In JSON the same entries are a list under ``"price"``: ``{"price": [{"provider": ...}, ...]}``.
Entries are numbered from 1 in error messages and price sources (``prices.toml#3``).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

from spendgate.pricing.rates import Rates

__all__ = ("PriceFileError", "PriceOverride", "load_overrides")

_PRICE_FIELDS = (
    "input_mtok",
    "cached_input_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
    "reasoning_mtok",
    "request_kusd",
)
_FIELDS = frozenset({"provider", "model", "effective_from", "effective_until", "discount_percent", *_PRICE_FIELDS})


class PriceFileError(ValueError):
    """The overrides file is unreadable or an entry in it is invalid."""

    def __init__(self, path: str | os.PathLike[str], index: int | None, problem: str) -> None:
        self.path = str(path)
        self.index = index  # 1-based entry number; None for a problem with the whole file
        self.problem = problem
        where = self.path if index is None else f"{self.path}: price #{index}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One overrides entry: explicit ``rates`` or a ``discount_percent`` on the list price.

    ``model`` is matched case-insensitively; a trailing ``*`` makes it a prefix. The entry is
    in effect over ``[effective_from, effective_until)`` (None: unbounded). ``origin`` names
    the entry in price sources, e.g. ``prices.toml#3``.
    """

    provider: str
    model: str
    rates: Rates | None = None
    discount_percent: Decimal | None = None
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    origin: str = "override"

    def __post_init__(self) -> None:
        if not self.provider:
            raise ValueError("provider must not be empty")
        if not self.model or "*" in self.model[:-1]:
            raise ValueError(f"model {self.model!r}: give a name, or a prefix and one trailing *")
        if (self.rates is None) == (self.discount_percent is None):
            raise ValueError("give either prices or discount_percent, not both and not neither")
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
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PriceFileError(path, None, "the overrides file must end in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PriceFileError(path, None, f"cannot read it: {e}") from e
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
    return tuple(_parse_entry(path, index, entry) for index, entry in enumerate(entries, start=1))


class _FloatText(str):
    """A number with a fraction or exponent, as written in the file: refused for money."""


_Fail = Callable[[str], PriceFileError]


def _parse_entry(path: Path, index: int, entry: object) -> PriceOverride:
    def fail(problem: str) -> PriceFileError:
        return PriceFileError(path, index, problem)

    if not isinstance(entry, Mapping):
        raise fail("an entry must be a table of fields")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}")
    provider = _text(entry, "provider", fail)
    model = _text(entry, "model", fail)
    effective_from = _instant(entry, "effective_from", fail)
    effective_until = _instant(entry, "effective_until", fail)

    given = {name: _money(entry[name], name, fail) for name in _PRICE_FIELDS if name in entry}
    discount = None
    if "discount_percent" in entry:
        discount = _money(entry["discount_percent"], "discount_percent", fail)
    origin = f"{path.name}#{index}"
    rates = None
    if discount is not None:
        if given:
            raise fail(f"give either prices ({', '.join(given)}) or discount_percent, not both")
    else:
        missing = [name for name in ("input_mtok", "output_mtok") if name not in given]
        if missing:
            raise fail(f"missing {' and '.join(missing)} (or give discount_percent instead)")
        input_mtok, output_mtok = given["input_mtok"], given["output_mtok"]
        cache_write_mtok = given.get("cache_write_mtok", input_mtok)
        rates = Rates(
            input_mtok=input_mtok,
            cached_input_mtok=given.get("cached_input_mtok", input_mtok),
            cache_write_mtok=cache_write_mtok,
            cache_write_1h_mtok=given.get("cache_write_1h_mtok", cache_write_mtok),
            output_mtok=output_mtok,
            reasoning_mtok=given.get("reasoning_mtok", output_mtok),
            request_kusd=given.get("request_kusd", Decimal(0)),
            source=f"overrides {origin} ({_period(effective_from, effective_until)})",
        )
    try:
        return PriceOverride(provider, model, rates, discount, effective_from, effective_until, origin)
    except ValueError as e:
        raise fail(str(e)) from e


def _text(entry: Mapping[str, object], name: str, fail: _Fail) -> str:
    value = entry.get(name)
    if value is None:
        raise fail(f"missing {name}")
    if not isinstance(value, str) or isinstance(value, _FloatText) or not value.strip():
        raise fail(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _money(value: object, name: str, fail: _Fail) -> Decimal:
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


def _instant(entry: Mapping[str, object], name: str, fail: _Fail) -> datetime | None:
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

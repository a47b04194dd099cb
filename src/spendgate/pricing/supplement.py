"""The supplement: reviewed prices genai-prices lacks, shipped with spendgate until it has them.

genai-prices is the list price; where its data misses a price a provider publishes (today: the
long-context tier of Claude Sonnet 4), the invoice and the ledger would disagree. The
supplement (``supplement.toml`` in this package) adds such prices, each entry citing the page
it was read from and the date it was read, and is applied between genai-prices and the user's
overrides:

- an entry names a genai-prices model by its provider and model ids, so every name genai-prices
  resolves to that model (dated snapshots, aliases) gets it;
- it adds input-size tiers (``[[price.tier]]``, as in the overrides file) over the genai-prices
  base price, which stays genai-prices' own; a supplement tier must name all six token prices;
- it applies only while genai-prices has no tier for that model at the request's instant: once
  an upgraded genai-prices carries the tier, its data wins and the entry is skipped;
- it prices the standard tier (and a service tier genai-prices has no price for, which is
  charged at standard).

The events it prices say so in their price source (``... + spendgate supplement#1 (URL, read
DATE) [input tokens > 200000]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

from spendgate.pricing.overrides import (
    PriceFileError,
    check_tier_starts,
    instant,
    parse_tiers,
    read_entries,
    text_field,
    tiers_over,
)
from spendgate.pricing.rates import PRICE_FIELDS
from spendgate.pricing.sheet import PriceSheet

__all__ = ("SUPPLEMENT_FILE", "SupplementEntry", "load_supplement", "parse_supplement")

SUPPLEMENT_FILE = "supplement.toml"
_FIELDS = frozenset({"provider", "model", "effective_from", "effective_until", "source", "read_on", "tier"})
# Every token price, so a reviewed tier never inherits a base price by accident.
_TIER_PRICES = tuple(name for name in PRICE_FIELDS if name != "request_kusd")


@dataclass(frozen=True, slots=True)
class SupplementEntry:
    """Input-size tiers of one genai-prices model, over ``[effective_from, effective_until)``."""

    provider: str  # genai-prices provider id
    model: str  # genai-prices model id
    tiers: tuple[tuple[int, Mapping[str, Decimal]], ...]  # (above_input_tokens, the prices it names)
    source: str  # where the prices were read: a URL
    read_on: date
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    origin: str = "supplement"

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("a supplement entry adds at least one tier")
        check_tier_starts([start for start, _ in self.tiers])
        for start, prices in self.tiers:
            missing = [name for name in _TIER_PRICES if name not in prices]
            if missing:
                raise ValueError(f"the tier above {start} input tokens must name {', '.join(missing)} too")

    def in_effect(self, at: datetime) -> bool:
        return (self.effective_from is None or self.effective_from <= at) and (
            self.effective_until is None or at < self.effective_until
        )

    def over(self, listed: PriceSheet) -> PriceSheet:
        """``listed`` (an untiered genai-prices price) with this entry's tiers added."""
        base = listed.base
        given = {name: getattr(base, name) for name in PRICE_FIELDS}
        source = f"{base.source} + spendgate {self.origin} ({self.source}, read {self.read_on.isoformat()})"
        return replace(listed, tiers=tiers_over(given, list(self.tiers), source))


def load_supplement() -> tuple[SupplementEntry, ...]:
    """The supplement shipped in this package (read from the installed package, never fetched)."""
    text = resources.files("spendgate.pricing").joinpath(SUPPLEMENT_FILE).read_text(encoding="utf-8")
    return parse_supplement(Path(SUPPLEMENT_FILE), text)


def parse_supplement(path: Path, text: str) -> tuple[SupplementEntry, ...]:
    """Supplement entries of a TOML document; raises ``PriceFileError`` on any problem."""
    return tuple(_parse_entry(path, index, entry) for index, entry in enumerate(read_entries(path, text), start=1))


def _parse_entry(path: Path, index: int, entry: object) -> SupplementEntry:
    def fail(problem: str) -> PriceFileError:
        return PriceFileError(path, index, problem)

    if not isinstance(entry, Mapping):
        raise fail("an entry must be a table of fields")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}")
    source = text_field(entry, "source", fail)
    if not source.startswith("https://"):
        raise fail(f"source must be the https:// address the prices were read from, got {source!r}")
    read_on = instant(entry, "read_on", fail)
    if read_on is None:
        raise fail("missing read_on (the date the source was read)")
    try:
        return SupplementEntry(
            provider=text_field(entry, "provider", fail).lower(),
            model=text_field(entry, "model", fail).lower(),
            tiers=tuple(parse_tiers(entry.get("tier", []), fail)),
            source=source,
            read_on=read_on.date(),
            effective_from=instant(entry, "effective_from", fail),
            effective_until=instant(entry, "effective_until", fail),
            origin=f"{path.name.removesuffix('.toml')}#{index}",
        )
    except ValueError as e:
        raise fail(str(e)) from e

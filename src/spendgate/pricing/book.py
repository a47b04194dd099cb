"""The one place the gateway asks for prices: overrides first, then genai-prices.

Resolving a price (matching the model name, choosing the conditional price in force, reading
the overrides) takes tens of microseconds, so ``PriceBook`` resolves once per (provider,
model) and keeps the answer with the window over which it cannot change; a repeat lookup in
that window is a dict hit and two datetime comparisons. A lookup outside the window resolves
again. Unknown models are cached too (as unpriced), so a stream of them stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from genai_prices.data_snapshot import DataSnapshot, get_snapshot

from spendgate.pricing.list_prices import find_list_model, list_price_at
from spendgate.pricing.overrides import PriceOverride, load_overrides
from spendgate.pricing.rates import Rates, cost
from spendgate.pricing.sheet import PriceSheet
from spendgate.usage.model import Usage

__all__ = ("DEFAULT_GENAI_PROVIDER_IDS", "PriceBook", "PricedUsage")

DEFAULT_GENAI_PROVIDER_IDS: Mapping[str, str | None] = MappingProxyType({"openai": "openai", "anthropic": "anthropic"})
# Open window ends, as instants, so the cache check is two plain comparisons.
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PricedUsage:
    """What a request cost and the unit prices it was charged at."""

    cost: Decimal  # USD, exact
    rates: Rates  # the unit prices charged, with their source


class PriceBook:
    """Prices by (provider, model, instant), from overrides and genai-prices.

    ``genai_provider_ids`` maps each gateway provider name to its genai-prices provider id,
    or None when genai-prices does not price it (then only overrides can). A provider not in
    the mapping is treated as None. ``snapshot`` is the genai-prices data to use; by default
    the one genai-prices itself uses, read when a price is resolved.
    """

    __slots__ = ("_cache", "_cache_size", "_genai_ids", "_overrides", "_snapshot")

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        *,
        genai_provider_ids: Mapping[str, str | None] = DEFAULT_GENAI_PROVIDER_IDS,
        snapshot: DataSnapshot | None = None,
        cache_size: int = 4096,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._overrides: dict[str, tuple[PriceOverride, ...]] = {}
        for override in overrides:
            self._overrides[override.provider] = (*self._overrides.get(override.provider, ()), override)
        self._genai_ids = {name.lower(): genai_id for name, genai_id in genai_provider_ids.items()}
        self._snapshot = snapshot
        self._cache_size = cache_size
        # (provider, model) as given -> (valid_from, valid_until, sheet or None if unpriced).
        self._cache: dict[tuple[str, str], tuple[datetime, datetime, PriceSheet | None]] = {}

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str] | None,
        *,
        genai_provider_ids: Mapping[str, str | None] = DEFAULT_GENAI_PROVIDER_IDS,
        snapshot: DataSnapshot | None = None,
        cache_size: int = 4096,
    ) -> PriceBook:
        """A book with the overrides in ``path`` (none when ``path`` is None or empty)."""
        overrides = load_overrides(path) if path else ()
        return cls(overrides, genai_provider_ids=genai_provider_ids, snapshot=snapshot, cache_size=cache_size)

    def sheet(self, provider: str, model: str, at: datetime) -> PriceSheet | None:
        """The prices of ``model`` at ``provider`` in force at ``at`` (timezone-aware), or None."""
        entry = self._cache.get((provider, model))
        if entry is not None:
            try:
                if entry[0] <= at < entry[1]:
                    return entry[2]
            except TypeError:  # naive ``at``: refuse below rather than guess its zone
                pass
        return self._resolve(provider, model, at)

    def price(self, provider: str, model: str, usage: Usage, at: datetime) -> PricedUsage | None:
        """The cost of ``usage`` of ``model`` at ``provider`` at ``at``; None when unpriced."""
        sheet = self.sheet(provider, model, at)
        if sheet is None:
            return None
        rates = sheet.rates_for(usage)
        return PricedUsage(cost(usage, rates), rates)

    def clear_cache(self) -> None:
        """Forget resolved prices, e.g. after genai-prices data was updated."""
        self._cache.clear()

    def _resolve(self, provider: str, model: str, at: datetime) -> PriceSheet | None:
        if at.utcoffset() is None:
            raise ValueError(f"price lookups need a timezone-aware instant, got {at!r}")
        provider_key, model_key = provider.lower(), model.lower()
        matching = [o for o in self._overrides.get(provider_key, ()) if o.matches(provider_key, model_key)]
        valid_from, valid_until = _steady_window(matching, at)

        listed: tuple[PriceSheet | None, datetime | None, datetime | None] | None = None
        sheet: PriceSheet | None = None
        for override in reversed(matching):  # the last entry in effect wins
            if not override.in_effect(at):
                continue
            if override.rates is not None:
                sheet = PriceSheet.flat(override.rates)
                break
            if listed is None:
                listed = self._list_sheet(provider_key, model_key, at)
            percent = override.discount_percent
            if listed[0] is not None and percent is not None:
                sheet = listed[0].discounted(percent, f"overrides {override.origin} ({override.period}) {percent}% off")
                break
            # A discount on a model genai-prices cannot price: fall through to earlier entries.
        else:
            listed = self._list_sheet(provider_key, model_key, at)
            sheet = listed[0]
        if listed is not None:  # the answer depended on the list price, so on its window too
            valid_from = _later(valid_from, listed[1])
            valid_until = _earlier(valid_until, listed[2])

        if sheet is not None:
            sheet = sheet.with_window(valid_from, valid_until)
        self._remember((provider, model), valid_from, valid_until, sheet)
        return sheet

    def _list_sheet(
        self, provider: str, model: str, at: datetime
    ) -> tuple[PriceSheet | None, datetime | None, datetime | None]:
        """genai-prices' price for the model at ``at``, and the window it holds for."""
        genai_id = self._genai_ids.get(provider)
        if genai_id is None:
            return None, None, None
        snapshot = self._snapshot or get_snapshot()
        found = find_list_model(snapshot, genai_id, model)
        if found is None:
            return None, None, None
        listed = list_price_at(found.model, at)
        source = f"{found.label} ({listed.condition})" if listed.condition else found.label
        sheet = PriceSheet.from_model_price(listed.prices, source=source)
        return sheet, listed.valid_from, listed.valid_until

    def _remember(
        self,
        key: tuple[str, str],
        valid_from: datetime | None,
        valid_until: datetime | None,
        sheet: PriceSheet | None,
    ) -> None:
        cache = self._cache
        if key not in cache and len(cache) >= self._cache_size:
            cache.pop(next(iter(cache)), None)  # evict the oldest entry: a bound, not an LRU
        cache[key] = (valid_from or _EARLIEST, valid_until or _LATEST, sheet)


def _steady_window(overrides: Sequence[PriceOverride], at: datetime) -> tuple[datetime | None, datetime | None]:
    """The span around ``at`` in which no matching override starts or stops being in effect."""
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    for override in overrides:
        for boundary in (override.effective_from, override.effective_until):
            if boundary is None:
                continue
            if boundary <= at:
                valid_from = _later(valid_from, boundary)
            else:
                valid_until = _earlier(valid_until, boundary)
    return valid_from, valid_until


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)

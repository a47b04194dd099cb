"""The one place the gateway asks for prices: overrides first, then the supplement over
genai-prices, then genai-prices.

Resolving a price (matching the model name, choosing the conditional price in force, reading
the overrides) takes tens of microseconds, so ``PriceBook`` resolves once per (provider,
model, service tier) and keeps the answer with the window over which it cannot change; a
repeat lookup in that window is a dict hit and two datetime comparisons. A lookup outside the
window resolves again. Unknown models are cached too (as unpriced), so a stream of them stays
cheap.

Service tiers: a request served at ``flex``, ``priority`` or ``batch`` is charged the
genai-prices price of that tier. When genai-prices has no price of the tier for the model at
that instant, it is charged the standard price and its price source says so ("... (flex tier
not listed: standard price)"), so it can be found and priced with an override entry that names
the ``service_tier``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from genai_prices.data_snapshot import DataSnapshot, get_snapshot

from spendgate.pricing.list_prices import ListPrice, find_list_model, list_price_at
from spendgate.pricing.overrides import PriceOverride, load_overrides
from spendgate.pricing.rates import Rates, cost
from spendgate.pricing.sheet import PriceSheet
from spendgate.pricing.supplement import SupplementEntry, load_supplement
from spendgate.usage.model import Usage
from spendgate.usage.service_tier import STANDARD

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
    the one genai-prices itself uses, read when a price is resolved. ``supplement`` holds the
    reviewed prices applied over genai-prices where it lacks them; None: the supplement
    shipped with spendgate, ``()``: none (genai-prices alone).
    """

    __slots__ = ("_cache", "_cache_size", "_genai_ids", "_overrides", "_snapshot", "_supplement")

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        *,
        genai_provider_ids: Mapping[str, str | None] = DEFAULT_GENAI_PROVIDER_IDS,
        snapshot: DataSnapshot | None = None,
        cache_size: int = 4096,
        supplement: Sequence[SupplementEntry] | None = None,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._overrides: dict[str, tuple[PriceOverride, ...]] = {}
        for override in overrides:
            self._overrides[override.provider] = (*self._overrides.get(override.provider, ()), override)
        # (genai provider id, genai model id) -> its supplement entries, in file order.
        self._supplement: dict[tuple[str, str], tuple[SupplementEntry, ...]] = {}
        for entry in load_supplement() if supplement is None else supplement:
            key = (entry.provider, entry.model)
            self._supplement[key] = (*self._supplement.get(key, ()), entry)
        self._genai_ids = {name.lower(): genai_id for name, genai_id in genai_provider_ids.items()}
        self._snapshot = snapshot
        self._cache_size = cache_size
        # (provider, model, service tier) as given -> (valid_from, valid_until, sheet or None).
        self._cache: dict[tuple[str, str, str | None], tuple[datetime, datetime, PriceSheet | None]] = {}

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str] | None,
        *,
        genai_provider_ids: Mapping[str, str | None] = DEFAULT_GENAI_PROVIDER_IDS,
        snapshot: DataSnapshot | None = None,
        cache_size: int = 4096,
        supplement: Sequence[SupplementEntry] | None = None,
    ) -> PriceBook:
        """A book with the overrides in ``path`` (none when ``path`` is None or empty)."""
        overrides = load_overrides(path) if path else ()
        return cls(
            overrides,
            genai_provider_ids=genai_provider_ids,
            snapshot=snapshot,
            cache_size=cache_size,
            supplement=supplement,
        )

    def sheet(self, provider: str, model: str, at: datetime, service_tier: str | None = None) -> PriceSheet | None:
        """The prices of ``model`` at ``provider`` in force at ``at`` (timezone-aware) for a
        request served at ``service_tier`` (normalized; None: standard), or None."""
        entry = self._cache.get((provider, model, service_tier))
        if entry is not None:
            try:
                if entry[0] <= at < entry[1]:
                    return entry[2]
            except TypeError:  # naive ``at``: refuse below rather than guess its zone
                pass
        return self._resolve(provider, model, at, service_tier)

    def price(
        self, provider: str, model: str, usage: Usage, at: datetime, service_tier: str | None = None
    ) -> PricedUsage | None:
        """The cost of ``usage`` of ``model`` at ``provider`` at ``at``, served at
        ``service_tier`` (normalized; None: standard); None when unpriced."""
        sheet = self.sheet(provider, model, at, service_tier)
        if sheet is None:
            return None
        rates = sheet.rates_for(usage)
        return PricedUsage(cost(usage, rates), rates)

    def clear_cache(self) -> None:
        """Forget resolved prices, e.g. after genai-prices data was updated."""
        self._cache.clear()

    def _resolve(self, provider: str, model: str, at: datetime, service_tier: str | None) -> PriceSheet | None:
        if at.utcoffset() is None:
            raise ValueError(f"price lookups need a timezone-aware instant, got {at!r}")
        provider_key, model_key = provider.lower(), model.lower()
        matching = [
            o
            for o in self._overrides.get(provider_key, ())
            if o.matches(provider_key, model_key) and o.serves(service_tier)
        ]
        valid_from, valid_until = _steady_window(matching, at)

        listed: tuple[PriceSheet | None, datetime | None, datetime | None] | None = None
        sheet: PriceSheet | None = None
        for override in reversed(matching):  # the last entry in effect wins
            if not override.in_effect(at):
                continue
            if override.rates is not None:
                sheet = PriceSheet(override.rates, override.tiers)
                break
            if listed is None:
                listed = self._list_sheet(provider_key, model_key, at, service_tier)
            percent = override.discount_percent
            if listed[0] is not None and percent is not None:
                sheet = listed[0].discounted(percent, f"overrides {override.origin} ({override.period}) {percent}% off")
                break
            # A discount on a model genai-prices cannot price: fall through to earlier entries.
        else:
            listed = self._list_sheet(provider_key, model_key, at, service_tier)
            sheet = listed[0]
        if listed is not None:  # the answer depended on the list price, so on its window too
            valid_from = _later(valid_from, listed[1])
            valid_until = _earlier(valid_until, listed[2])

        if sheet is not None:
            sheet = sheet.with_window(valid_from, valid_until)
        self._remember((provider, model, service_tier), valid_from, valid_until, sheet)
        return sheet

    def _list_sheet(
        self, provider: str, model: str, at: datetime, service_tier: str | None
    ) -> tuple[PriceSheet | None, datetime | None, datetime | None]:
        """The list price of the model at ``at`` and ``service_tier`` (genai-prices, with the
        supplement where it applies), and the window it holds for."""
        genai_id = self._genai_ids.get(provider)
        if genai_id is None:
            return None, None, None
        snapshot = self._snapshot or get_snapshot()
        found = find_list_model(snapshot, genai_id, model)
        if found is None:
            return None, None, None
        listed = list_price_at(found, at, service_tier)
        source = found.label + _qualifier(listed, service_tier)
        sheet = PriceSheet.from_model_price(listed.prices, source=source)
        valid_from, valid_until = listed.valid_from, listed.valid_until
        supplement = self._supplement.get((found.provider.id, found.model.id), ())
        if supplement and (service_tier in (None, STANDARD) or not listed.tier_priced):
            # Standard prices: the supplement may add what genai-prices lacks.
            supplement_from, supplement_until = _steady_window(supplement, at)
            valid_from, valid_until = _later(valid_from, supplement_from), _earlier(valid_until, supplement_until)
            in_effect = next((entry for entry in reversed(supplement) if entry.in_effect(at)), None)
            # Only until genai-prices has tiers of its own for the model at that instant.
            if in_effect is not None and sheet is not None and not sheet.tiers:
                sheet = in_effect.over(sheet)
        return sheet, valid_from, valid_until

    def _remember(
        self,
        key: tuple[str, str, str | None],
        valid_from: datetime | None,
        valid_until: datetime | None,
        sheet: PriceSheet | None,
    ) -> None:
        cache = self._cache
        if key not in cache and len(cache) >= self._cache_size:
            cache.pop(next(iter(cache)), None)  # evict the oldest entry: a bound, not an LRU
        cache[key] = (valid_from or _EARLIEST, valid_until or _LATEST, sheet)


def _qualifier(listed: ListPrice, service_tier: str | None) -> str:
    """Why this list price, for the price source: " (from 2025-06-10, flex tier)"."""
    reasons = [listed.condition] if listed.condition else []
    if service_tier not in (None, STANDARD):
        listed_tier = "" if listed.tier_priced else " not listed: standard price"
        reasons.append(f"{service_tier} tier{listed_tier}")
    return f" ({', '.join(reasons)})" if reasons else ""


def _steady_window(
    overrides: Sequence[PriceOverride | SupplementEntry], at: datetime
) -> tuple[datetime | None, datetime | None]:
    """The span around ``at`` in which no matching entry starts or stops being in effect."""
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

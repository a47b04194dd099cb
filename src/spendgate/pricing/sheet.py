"""One model's prices over a validity window, possibly tiered by the request's input size.

A genai-prices ``ModelPrice`` names prices by unit (``input_mtok``, ``cache_read_mtok``…) and
charges each token at the most specific priced unit it belongs to; a kind of token with no
price of its own falls back to its parent's (cache reads at the input price, reasoning at the
output price…). Building a sheet resolves that fallback once, so pricing a request is
arithmetic only.

Tiers are genai-prices' "cliff" tiers: when a request's total input tokens exceed a tier's
start, every token of that unit is charged at the tier price. Units may have different tier
starts; the sheet keeps one ``Rates`` per distinct start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from genai_prices.types import ModelPrice, TieredPrices

from spendgate.pricing.rates import ZERO, Rates
from spendgate.usage.model import Usage

__all__ = ("PriceSheet",)

# For each Rates field, the genai-prices price keys that price that kind of token, most
# specific first; the first one the model prices is the one genai-prices charges.
_FALLBACKS: dict[str, tuple[str, ...]] = {
    "input_mtok": ("input_mtok",),
    "cached_input_mtok": ("cache_read_mtok", "input_mtok"),
    "cache_write_mtok": ("cache_write_5m_mtok", "cache_write_mtok", "input_mtok"),
    "cache_write_1h_mtok": ("cache_write_1h_mtok", "cache_write_mtok", "input_mtok"),
    "output_mtok": ("output_mtok",),
    "reasoning_mtok": ("output_reasoning_mtok", "output_mtok"),
    "request_kusd": ("requests_kcount",),
}
_PRICED_HERE = frozenset(key for keys in _FALLBACKS.values() for key in keys)


@dataclass(frozen=True, slots=True)
class PriceSheet:
    """Prices of one model, valid over ``[valid_from, valid_until)`` (None: unbounded).

    ``tiers`` holds ``(start, rates)`` in ascending ``start``: ``rates`` apply when the
    request's input tokens exceed ``start``; ``base`` applies up to the first start.
    """

    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def rates_for(self, usage: Usage) -> Rates:
        """The rates charged for ``usage``: the highest tier its input tokens exceed."""
        rates = self.base
        input_tokens = usage.input_tokens
        for start, tier_rates in self.tiers:
            if input_tokens <= start:
                break
            rates = tier_rates
        return rates

    def covers(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at < self.valid_until
        )

    def with_window(self, valid_from: datetime | None, valid_until: datetime | None) -> PriceSheet:
        return replace(self, valid_from=valid_from, valid_until=valid_until)

    def discounted(self, percent: Decimal, source: str) -> PriceSheet:
        """Every price, tier by tier, times ``1 - percent/100``; ``source`` prefixes each tier's."""
        return replace(
            self,
            base=self.base.discounted(percent, f"{source} {self.base.source}"),
            tiers=tuple((start, rates.discounted(percent, f"{source} {rates.source}")) for start, rates in self.tiers),
        )

    @classmethod
    def flat(cls, rates: Rates, valid_from: datetime | None = None, valid_until: datetime | None = None) -> PriceSheet:
        """Untiered prices, e.g. an override entry's."""
        return cls(rates, (), valid_from, valid_until)

    @classmethod
    def from_model_price(
        cls,
        model_price: ModelPrice,
        *,
        source: str,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> PriceSheet | None:
        """The sheet for a genai-prices price, or None when it prices nothing we count.

        A model priced only in units out of scope here (audio hours, characters…) cannot be
        priced from token usage: None, so the gateway records it as unpriced rather than
        free. A model with no prices at all (e.g. OpenAI moderation) is free.
        """
        prices = {
            key: value for key, value in vars(model_price).items() if value is not None and not key.startswith("_")
        }
        if prices and prices.keys().isdisjoint(_PRICED_HERE):
            return None
        starts = sorted(
            {
                tier.start
                for key, value in prices.items()
                if key in _PRICED_HERE and isinstance(value, TieredPrices)
                for tier in value.tiers
            }
        )
        base = _rates_above(prices, None, source)
        tiers = tuple((start, _rates_above(prices, start, f"{source} [input tokens > {start}]")) for start in starts)
        return cls(base, tiers, valid_from, valid_until)


def _rates_above(prices: dict[str, object], start: int | None, source: str) -> Rates:
    """Rates for requests whose input tokens exceed ``start`` (None: the base prices)."""
    values: dict[str, Decimal] = {}
    for field_name, keys in _FALLBACKS.items():
        price = next((prices[key] for key in keys if key in prices), None)
        values[field_name] = _price_above(price, start)
    return Rates(**values, source=source)


def _price_above(price: object, start: int | None) -> Decimal:
    if price is None:
        return ZERO
    if isinstance(price, TieredPrices):
        # Tier starts of other units are boundaries too, so take this unit's highest tier at
        # or below ``start``: for input tokens in (start, next start] it is the one exceeded.
        tier_price = price.base
        best_start = -1
        for tier in price.tiers:
            if start is not None and best_start < tier.start <= start:
                best_start, tier_price = tier.start, tier.price
        return tier_price
    if isinstance(price, Decimal):
        return price
    raise TypeError(f"unexpected genai-prices price {price!r}")

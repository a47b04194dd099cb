"""Prices: what a request cost, exactly, and where that price came from.

``PriceBook`` is the entry point: overrides from the ``SPENDGATE_PRICES`` file first, then
the genai-prices list price in force at the request's time and service tier, with the
reviewed supplement (``supplement.toml``) where genai-prices lacks a published price. Only
token prices and per-request prices are charged; other units (web searches, audio, images…)
are out of scope.
"""

from spendgate.pricing.book import PriceBook, PricedUsage
from spendgate.pricing.overrides import PriceFileError, PriceOverride, load_overrides
from spendgate.pricing.rates import Rates, cost
from spendgate.pricing.sheet import PriceSheet
from spendgate.pricing.supplement import SupplementEntry, load_supplement

__all__ = (
    "PriceBook",
    "PriceFileError",
    "PriceOverride",
    "PriceSheet",
    "PricedUsage",
    "Rates",
    "SupplementEntry",
    "cost",
    "load_overrides",
    "load_supplement",
)

"""FOCUS 1.2 rows from the ledger's charge groups (pure: groups in, rows out).

One row per charge day x provider x model x owner (project, team, cost center) x price (the
service tier and the price source that priced it), never one per request. Costs:

- ``BilledCost`` = ``EffectiveCost`` = ``ContractedCost``: what the ledger charged, exact. The
  gateway charges per request with no commitment to amortize, so what is billed is what is
  effective, and the rate charged is the contracted one (negotiated overrides included).
- ``ListCost``: the same when the list price priced the group; when an override (negotiated
  rate or discount) did, the group's tokens at the list price in force at the start of the
  charge day (its base rates: request-size tiers are per request and the group has only its
  totals). The negotiated discount shows as ListCost - ContractedCost. A model without a list
  price keeps ListCost = BilledCost.
- A group whose every request is unpriced has cost 0 (FOCUS costs are never null) and says so
  in ``x_UnpricedRequests``; a partly unpriced group's cost is a lower bound, likewise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd

# Every FOCUS 1.2 column (the spec's alphabetical order), then spendgate's own (x_).
FOCUS_COLUMNS = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
CUSTOM_COLUMNS = (
    "x_Project",
    "x_Team",
    "x_CostCenter",
    "x_ServiceTier",
    "x_Source",
    "x_PriceSource",
    "x_Requests",
    "x_UnpricedRequests",
    "x_InputTokens",
    "x_CachedInputTokens",
    "x_CacheWriteTokens",
    "x_OutputTokens",
    "x_ReasoningTokens",
)
COLUMNS = (*FOCUS_COLUMNS, *CUSTOM_COLUMNS)
PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "azure": "Microsoft Azure OpenAI",
    "gemini": "Google Gemini",
    "google": "Google",
    "manual": "spendgate (other costs)",
}
MANUAL = "manual"
UNALLOCATED = "unallocated"
# What the list price of a group's tokens is: (provider, model, usage totals, instant, tier)
# -> USD, or None when the model has no list price.
ListPricer = Callable[[str, str, Mapping[str, int], datetime, str | None], Decimal | None]


def focus_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_bounds(day: date) -> tuple[datetime, datetime]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return datetime(first.year, first.month, 1, tzinfo=UTC), datetime(following.year, following.month, 1, tzinfo=UTC)


def is_list_priced(price_source: str | None) -> bool:
    """Whether the list price (not an override) priced a group."""
    return not (price_source or "").startswith("overrides")


def focus_row(group: Mapping[str, Any], ledger_id: str, list_price: ListPricer | None = None) -> dict[str, str | None]:
    day = date.fromisoformat(group["day"])
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    period_start, period_end = _month_bounds(day)
    provider, model = group["provider"], group["model"]
    manual = group["source"] == MANUAL
    billed: Decimal = group["cost_usd"]
    tokens = group["input_tokens"] + group["output_tokens"]
    list_cost = billed
    if not manual and not is_list_priced(group["price_source"]) and list_price is not None:
        usage = {k: group[k] for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens",
                                       "cache_write_1h_tokens", "output_tokens", "reasoning_tokens")}  # fmt: skip
        listed = list_price(provider, model, usage, start, group["service_tier"])
        list_cost = billed if listed is None else listed
    provider_name = PROVIDER_NAMES.get(provider, provider)
    price_id = f"{provider}/{model}/{group['service_tier'] or 'standard'}/{group['price_source'] or 'unpriced'}"
    project = group["project"] or UNALLOCATED
    quantity = None if manual else str(tokens)
    tags = {k: v for k, v in (("team", group["team"]), ("cost_center", group["cost_center"])) if v}
    return {
        "AvailabilityZone": None,
        "BilledCost": format_usd(billed),
        "BillingAccountId": ledger_id,
        "BillingAccountName": f"spendgate ledger {ledger_id}",
        "BillingAccountType": "Ledger",
        "BillingCurrency": "USD",
        "BillingPeriodEnd": focus_time(period_end),
        "BillingPeriodStart": focus_time(period_start),
        "CapacityReservationId": None,
        "CapacityReservationStatus": None,
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{model} ({'other cost' if manual else 'tokens'}) via {provider_name}",
        "ChargeFrequency": "One-Time" if manual else "Usage-Based",
        "ChargePeriodEnd": focus_time(start + timedelta(days=1)),
        "ChargePeriodStart": focus_time(start),
        "CommitmentDiscountCategory": None,
        "CommitmentDiscountId": None,
        "CommitmentDiscountName": None,
        "CommitmentDiscountQuantity": None,
        "CommitmentDiscountStatus": None,
        "CommitmentDiscountType": None,
        "CommitmentDiscountUnit": None,
        "ConsumedQuantity": quantity,
        "ConsumedUnit": None if manual else "Tokens",
        "ContractedCost": format_usd(billed),
        "ContractedUnitPrice": None,
        "EffectiveCost": format_usd(billed),
        "InvoiceId": None,
        "InvoiceIssuerName": provider_name,
        "ListCost": format_usd(list_cost),
        "ListUnitPrice": None,
        "PricingCategory": "Standard",
        "PricingCurrency": "USD",
        "PricingCurrencyContractedUnitPrice": None,
        "PricingCurrencyEffectiveCost": format_usd(billed),
        "PricingCurrencyListUnitPrice": None,
        "PricingQuantity": quantity,
        "PricingUnit": None if manual else "Tokens",
        "ProviderName": provider_name,
        "PublisherName": provider_name,
        "RegionId": None,
        "RegionName": None,
        "ResourceId": None,
        "ResourceName": None,
        "ResourceType": None,
        "ServiceCategory": "Other" if manual else "AI and Machine Learning",
        "ServiceName": model if manual else f"{provider_name} API",
        "ServiceSubcategory": "Other (Other)" if manual else "Generative AI",
        "SkuId": model,
        "SkuMeter": None if manual else "Tokens",
        "SkuPriceDetails": None,
        # The price point: what priced the group (list price or an override), at its tier.
        "SkuPriceId": price_id[:512],
        "SubAccountId": project,
        "SubAccountName": project,
        "SubAccountType": "Project",
        "Tags": json.dumps(tags, sort_keys=True) if tags else None,
        "x_Project": project,
        "x_Team": group["team"],
        "x_CostCenter": group["cost_center"],
        "x_ServiceTier": group["service_tier"],
        "x_Source": group["source"],
        "x_PriceSource": group["price_source"],
        "x_Requests": str(group["requests"]),
        "x_UnpricedRequests": str(group["unpriced_requests"]),
        "x_InputTokens": str(group["input_tokens"]),
        "x_CachedInputTokens": str(group["cached_input_tokens"]),
        "x_CacheWriteTokens": str(group["cache_write_tokens"]),
        "x_OutputTokens": str(group["output_tokens"]),
        "x_ReasoningTokens": str(group["reasoning_tokens"]),
    }


def focus_rows(
    groups: Iterable[Mapping[str, Any]], ledger_id: str, list_price: ListPricer | None = None
) -> Iterator[dict[str, str | None]]:
    for group in groups:
        yield focus_row(group, ledger_id, list_price)

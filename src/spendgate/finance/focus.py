"""FOCUS 1.2 rows from the ledger's charge groups (pure: groups in, rows out).

A group is a charge day x provider x model x owner (project, team, cost center) x price (the
service tier and the price source that priced it), never a request. Each group becomes one row
per token kind it has (finance/focus_meters.py: input, cache reads, cache writes, output,
reasoning), priced per token of that kind (``PricingUnit`` "Input Tokens", "Output Tokens"...);
a group without tokens (an other cost) stays one row. Costs:

- ``BilledCost`` = ``EffectiveCost`` = ``ContractedCost``: what the ledger charged, exact. The
  gateway charges per request with no commitment to amortize, so what is billed is what is
  effective, and the rate charged is the contracted one (negotiated overrides included). A
  group's cost is shared among its kind rows by their list cost (allocation's exact
  largest-remainder split), so the rows of a group sum to its cost to the last digit.
- ``ListCost``: the same when the list price priced the group; when an override (negotiated
  rate or discount) did, the row's tokens at the list rate in force at the start of the charge
  day (its base rates: request-size tiers are per request and the group has only its totals).
  The negotiated discount shows as ListCost - ContractedCost. A model without a list price
  keeps ListCost = BilledCost and no ListUnitPrice.
- A group whose every request is unpriced has cost 0 (FOCUS costs are never null) and says so
  in ``x_UnpricedRequests``; a partly unpriced group's cost is a lower bound, likewise.
- Counts of the group (``x_Requests``, ``x_UnpricedRequests``, ``x_*Tokens``) are on its first
  row only (empty on the others), so a column's sum is the ledger's.

Values are typed (Decimal, datetime, int, str or None); finance/focus_files.py writes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.finance.focus_meters import meter_cost, meter_quantities, split_by_list_weight, unit_price
from spendgate.pricing.rates import Rates

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
    "x_TokenKind",
    "x_Requests",
    "x_UnpricedRequests",
    "x_InputTokens",
    "x_CachedInputTokens",
    "x_CacheWriteTokens",
    "x_CacheWrite1hTokens",
    "x_OutputTokens",
    "x_ReasoningTokens",
)
COLUMNS = (*FOCUS_COLUMNS, *CUSTOM_COLUMNS)
# The columns' value types (every other column is text): what the file writers need.
DECIMAL_COLUMNS = frozenset(
    {
        "BilledCost", "CommitmentDiscountQuantity", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice",
        "EffectiveCost", "ListCost", "ListUnitPrice", "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity",
    }
)  # fmt: skip
DATETIME_COLUMNS = frozenset({"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"})
# The group's counts, on its first row only; FOCUS_FIGURES name -> column.
COUNT_COLUMNS = {
    "requests": "x_Requests",
    "unpriced_requests": "x_UnpricedRequests",
    "input_tokens": "x_InputTokens",
    "cached_input_tokens": "x_CachedInputTokens",
    "cache_write_tokens": "x_CacheWriteTokens",
    "cache_write_1h_tokens": "x_CacheWrite1hTokens",
    "output_tokens": "x_OutputTokens",
    "reasoning_tokens": "x_ReasoningTokens",
}
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
# A group without tokens of any kind (its requests all failed before usage) is still Usage:
# FOCUS wants a PricingUnit on it.
NO_TOKENS_UNIT = "Tokens"
# The list prices of a model: (provider, model, instant, service tier) -> its base rates, or
# None when the model has no list price.
ListRates = Callable[[str, str, datetime, str | None], Rates | None]


def focus_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def billing_account_id(ledger_id: str) -> str:
    """Stable across exports of one ledger, and says whose it is."""
    return f"spendgate-{ledger_id}"


def _month_bounds(day: date) -> tuple[datetime, datetime]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return datetime(first.year, first.month, 1, tzinfo=UTC), datetime(following.year, following.month, 1, tzinfo=UTC)


def is_list_priced(price_source: str | None) -> bool:
    """Whether the list price (not an override) priced a group."""
    return not (price_source or "").startswith("overrides")


def _group_columns(group: Mapping[str, Any], ledger_id: str) -> dict[str, Any]:
    """The columns every row of a group shares."""
    day = date.fromisoformat(group["day"])
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    period_start, period_end = _month_bounds(day)
    provider, model = group["provider"], group["model"]
    manual = group["source"] == MANUAL
    provider_name = PROVIDER_NAMES.get(provider, provider)
    project = group["project"] or UNALLOCATED
    tags = {k: v for k, v in (("team", group["team"]), ("cost_center", group["cost_center"])) if v}
    account = billing_account_id(ledger_id)
    nulls = (
        "AvailabilityZone", "CapacityReservationId", "CapacityReservationStatus", "ChargeClass",
        "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
        "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit", "ContractedUnitPrice",
        "InvoiceId", "PricingCurrencyContractedUnitPrice", "RegionId", "RegionName", "ResourceId", "ResourceName",
        "ResourceType", "SkuPriceDetails",
    )  # fmt: skip
    return {
        **dict.fromkeys(nulls),
        "BillingAccountId": account,
        "BillingAccountName": f"spendgate ledger {ledger_id}",
        "BillingAccountType": "Ledger",
        "BillingCurrency": "USD",
        "BillingPeriodEnd": period_end,
        "BillingPeriodStart": period_start,
        "ChargeCategory": "Usage",
        "ChargeFrequency": "One-Time" if manual else "Usage-Based",
        "ChargePeriodEnd": start + timedelta(days=1),
        "ChargePeriodStart": start,
        "InvoiceIssuerName": provider_name,
        "PricingCategory": "Standard",
        "PricingCurrency": "USD",
        "ProviderName": provider_name,
        "PublisherName": provider_name,
        "ServiceCategory": "Other" if manual else "AI and Machine Learning",
        "ServiceName": model if manual else f"{provider_name} API",
        "ServiceSubcategory": "Other (Other)" if manual else "Generative AI",
        "SkuId": model,
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
        **dict.fromkeys(COUNT_COLUMNS.values()),
    }


def _costs(billed: Decimal, listed: Decimal) -> dict[str, Decimal]:
    return {
        "BilledCost": billed,
        "ContractedCost": billed,
        "EffectiveCost": billed,
        "PricingCurrencyEffectiveCost": billed,
        "ListCost": listed,
    }


def _price_id(group: Mapping[str, Any], kind: str | None) -> str:
    """The price point: what priced the group (list price or an override), at its tier, per kind."""
    price_id = f"{group['provider']}/{group['model']}/{group['service_tier'] or 'standard'}"
    price_id += f"/{group['price_source'] or 'unpriced'}" + (f"/{kind}" if kind else "")
    return price_id[:512]


def group_rows(group: Mapping[str, Any], ledger_id: str, list_rates: ListRates | None = None) -> list[dict[str, Any]]:
    """The FOCUS rows of one charge group: one per token kind it has, else one."""
    shared = _group_columns(group, ledger_id)
    provider_name = shared["ProviderName"]
    model = group["model"]
    billed: Decimal = group["cost_usd"]
    manual = group["source"] == MANUAL
    rates = None
    if not manual and list_rates is not None:
        rates = list_rates(group["provider"], model, shared["ChargePeriodStart"], group["service_tier"])
    priced_requests = group["requests"] - group["unpriced_requests"]
    quantities = {} if manual else meter_quantities(group, priced_requests, rates)
    overridden = not is_list_priced(group["price_source"]) and rates is not None
    rows: list[dict[str, Any]] = []
    if not quantities:
        quantity = None if manual else Decimal(0)
        unit = None if manual else NO_TOKENS_UNIT
        rows.append(
            {
                **shared,
                **_costs(billed, billed),
                "ChargeDescription": f"{model} ({'other cost' if manual else 'tokens'}) via {provider_name}",
                "ConsumedQuantity": quantity,
                "ConsumedUnit": unit,
                "ListUnitPrice": None,
                "PricingCurrencyListUnitPrice": None,
                "PricingQuantity": quantity,
                "PricingUnit": unit,
                "SkuMeter": unit,
                "SkuPriceId": _price_id(group, None),
                "x_TokenKind": None,
            }
        )
    else:
        shares = split_by_list_weight(billed, quantities, rates)
        for meter, count in quantities.items():
            share = shares[meter]
            list_price = None if rates is None else unit_price(meter, rates)
            listed = meter_cost(meter, count, rates) if overridden and rates is not None else share
            rows.append(
                {
                    **shared,
                    **_costs(share, listed),
                    "ChargeDescription": f"{model} {meter.unit.lower()} via {provider_name}",
                    "ConsumedQuantity": Decimal(count),
                    "ConsumedUnit": meter.unit,
                    "ListUnitPrice": list_price,
                    "PricingCurrencyListUnitPrice": list_price,
                    "PricingQuantity": Decimal(count),
                    "PricingUnit": meter.unit,
                    "SkuMeter": meter.unit,
                    "SkuPriceId": _price_id(group, meter.kind),
                    "x_TokenKind": meter.kind,
                }
            )
    rows[0].update({column: group[figure] for figure, column in COUNT_COLUMNS.items()})
    return rows


def focus_rows(
    groups: Iterable[Mapping[str, Any]], ledger_id: str, list_rates: ListRates | None = None
) -> Iterator[dict[str, Any]]:
    for group in groups:
        yield from group_rows(group, ledger_id, list_rates)

"""FOCUS 1.2 as the specification states it (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tag
v1.2, specification/columns/*.md): each column's feature level, whether it allows nulls, its
data type; and the allowed values of the columns spendgate fills with them. Written from the
spec, not from spendgate's exporter, so the check is independent of it."""

from __future__ import annotations

import json
import re
from typing import Any

COLUMNS: dict[str, tuple[str, bool, str]] = {
    "AvailabilityZone": ("Recommended", True, "String"),
    "BilledCost": ("Mandatory", False, "Decimal"),
    "BillingAccountId": ("Mandatory", False, "String"),
    "BillingAccountName": ("Mandatory", True, "String"),
    "BillingAccountType": ("Conditional", False, "String"),
    "BillingCurrency": ("Mandatory", False, "String"),
    "BillingPeriodEnd": ("Mandatory", False, "Date/Time"),
    "BillingPeriodStart": ("Mandatory", False, "Date/Time"),
    "CapacityReservationId": ("Conditional", True, "String"),
    "CapacityReservationStatus": ("Conditional", True, "String"),
    "ChargeCategory": ("Mandatory", False, "String"),
    "ChargeClass": ("Mandatory", True, "String"),
    "ChargeDescription": ("Mandatory", True, "String"),
    "ChargeFrequency": ("Recommended", False, "String"),
    "ChargePeriodEnd": ("Mandatory", False, "Date/Time"),
    "ChargePeriodStart": ("Mandatory", False, "Date/Time"),
    "CommitmentDiscountCategory": ("Conditional", True, "String"),
    "CommitmentDiscountId": ("Conditional", True, "String"),
    "CommitmentDiscountName": ("Conditional", True, "String"),
    "CommitmentDiscountQuantity": ("Conditional", True, "Decimal"),
    "CommitmentDiscountStatus": ("Conditional", True, "String"),
    "CommitmentDiscountType": ("Conditional", True, "String"),
    "CommitmentDiscountUnit": ("Conditional", True, "String"),
    "ConsumedQuantity": ("Conditional", True, "Decimal"),
    "ConsumedUnit": ("Conditional", True, "String"),
    "ContractedCost": ("Mandatory", False, "Decimal"),
    "ContractedUnitPrice": ("Conditional", True, "Decimal"),
    "EffectiveCost": ("Mandatory", False, "Decimal"),
    "InvoiceId": ("Recommended", True, "String"),
    "InvoiceIssuerName": ("Mandatory", False, "String"),
    "ListCost": ("Mandatory", False, "Decimal"),
    "ListUnitPrice": ("Conditional", True, "Decimal"),
    "PricingCategory": ("Conditional", True, "String"),
    "PricingCurrency": ("Conditional", True, "String"),
    "PricingCurrencyContractedUnitPrice": ("Conditional", True, "Decimal"),
    "PricingCurrencyEffectiveCost": ("Conditional", True, "Decimal"),
    "PricingCurrencyListUnitPrice": ("Conditional", True, "Decimal"),
    "PricingQuantity": ("Mandatory", True, "Decimal"),
    "PricingUnit": ("Mandatory", True, "String"),
    "ProviderName": ("Mandatory", False, "String"),
    "PublisherName": ("Mandatory", False, "String"),
    "RegionId": ("Conditional", True, "String"),
    "RegionName": ("Conditional", True, "String"),
    "ResourceId": ("Conditional", True, "String"),
    "ResourceName": ("Conditional", True, "String"),
    "ResourceType": ("Conditional", True, "String"),
    "ServiceCategory": ("Mandatory", False, "String"),
    "ServiceName": ("Mandatory", False, "String"),
    "ServiceSubcategory": ("Recommended", False, "String"),
    "SkuId": ("Conditional", True, "String"),
    "SkuMeter": ("Conditional", True, "String"),
    "SkuPriceDetails": ("Conditional", True, "JSON"),
    "SkuPriceId": ("Conditional", True, "String"),
    "SubAccountId": ("Conditional", True, "String"),
    "SubAccountName": ("Conditional", True, "String"),
    "SubAccountType": ("Conditional", True, "String"),
    "Tags": ("Conditional", True, "JSON"),
}
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"},
    "ServiceCategory": {
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
        "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
        "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
        "Storage", "Web", "Other",
    },
}  # fmt: skip
# ServiceSubcategory -> its one parent ServiceCategory (the values spendgate uses).
SUBCATEGORY_PARENT = {"Generative AI": "AI and Machine Learning", "Other (Other)": "Other"}
# Numeric Format: integer, decimal or E notation; no sign for a positive value.
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")
# Date/Time Format: extended ISO 8601 in UTC, 'YYYY-MM-DDTHH:mm:ssZ'.
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# UnitFormat (specification/attributes/unit_format.md): an optional unit quantity (a positive
# integer and a space), then a simple unit, a compound unit (two base units joined by "-") or a
# ratio unit ("/", its denominator optionally with a quantity). A base unit is one of the data
# size abbreviations (the same for singular and plural) or a capitalized noun: the time units
# and recommended count units (Tokens, Requests...) are such nouns, and a count unit the lists
# lack "may be used as long as it is capitalized" ("Input Tokens": every word capitalized).
_DATA_SIZE = "|".join(f"{p}{b}" for p in ("", "K", "M", "G", "T", "P", "E") for b in ("b", "B"))
_DATA_SIZE += "|" + "|".join(f"{p}i{b}" for p in ("K", "M", "G", "T", "P", "E") for b in ("b", "B"))
_NOUN = r"[A-Z][a-z]*(?: [A-Z][a-z]*)*"
_BASE_UNIT = rf"(?:{_DATA_SIZE}|{_NOUN})"
_UNITS = rf"{_BASE_UNIT}(?:-{_BASE_UNIT})?"
_QUANTITY = r"[1-9][0-9]* "
UNIT_FORMAT = re.compile(rf"^(?:{_QUANTITY})?{_UNITS}(?:/(?:{_QUANTITY})?{_UNITS})?$")
# The FOCUS columns whose values follow UnitFormat.
UNIT_COLUMNS = ("PricingUnit", "ConsumedUnit", "CommitmentDiscountUnit")


def problems(header: list[str], rows: list[dict[str, str]]) -> list[str]:
    """What breaks FOCUS 1.2 in a CSV (empty cell: null)."""
    found = []
    for name, (level, _, _) in COLUMNS.items():
        if level == "Mandatory" and name not in header:
            found.append(f"mandatory column {name} missing")
    for name in header:
        if name not in COLUMNS and not name.startswith("x_"):
            found.append(f"column {name} is neither FOCUS 1.2 nor custom (x_)")
    for i, row in enumerate(rows):
        for name, value in row.items():
            if name not in COLUMNS:
                continue
            _, nullable, kind = COLUMNS[name]
            if value == "":
                if not nullable:
                    found.append(f"row {i}: {name} is null")
                continue
            if kind == "Decimal" and not _DECIMAL.match(value):
                found.append(f"row {i}: {name}={value!r} is not a FOCUS number")
            if kind == "Date/Time" and not _DATETIME.match(value):
                found.append(f"row {i}: {name}={value!r} is not a FOCUS date/time")
            if kind == "JSON" and not isinstance(_json(value), dict):
                found.append(f"row {i}: {name} is not a JSON object")
            if name in ALLOWED and value not in ALLOWED[name]:
                found.append(f"row {i}: {name}={value!r} is not an allowed value")
            if name.endswith("Currency") and not _CURRENCY.match(value):
                found.append(f"row {i}: {name}={value!r} is not a currency code")
            if name in UNIT_COLUMNS and not UNIT_FORMAT.match(value):
                found.append(f"row {i}: {name}={value!r} breaks UnitFormat")
        # Cross-column rules of 1.2 (those spendgate's rows can break).
        if (row.get("PricingQuantity") == "") != (row.get("PricingUnit") == ""):
            found.append(f"row {i}: PricingUnit must be null exactly when PricingQuantity is")
        if (row.get("ConsumedQuantity") == "") != (row.get("ConsumedUnit") == ""):
            found.append(f"row {i}: ConsumedUnit must be null exactly when ConsumedQuantity is")
        parent = SUBCATEGORY_PARENT.get(row.get("ServiceSubcategory", ""))
        if parent != row.get("ServiceCategory"):
            found.append(f"row {i}: ServiceSubcategory {row.get('ServiceSubcategory')!r} is not under its category")
        if row.get("ChargeCategory") == "Purchase" and row.get("ChargeFrequency") == "Usage-Based":
            found.append(f"row {i}: a Purchase is never Usage-Based")
        if row.get("ChargePeriodStart", "") >= row.get("ChargePeriodEnd", ""):
            found.append(f"row {i}: ChargePeriodEnd is not after ChargePeriodStart")
    return found


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None

"""Bounds on the reference fields finance attaches to owners (a team's purchase-order
reference, a customer's name and reference): what an admin types, checked before it is stored
and printed on statements (pure)."""

from __future__ import annotations

import unicodedata

from spendgate.attribution.rules import MAX_HEADER_VALUE
from spendgate.ledger.errors import StoreError

MAX_REFERENCE_CHARS = 200
MAX_CUSTOMER_ID_CHARS = MAX_HEADER_VALUE  # the longest id x-spendgate-customer can carry


def check_text(label: str, value: str, limit: int = MAX_REFERENCE_CHARS) -> str | None:
    """``value`` stripped (empty: None, i.e. cleared), refused when longer than ``limit`` or
    holding control characters (a line break in a reference would break CSV importers and
    the statement's layout)."""
    text = value.strip()
    if len(text) > limit:
        raise StoreError(f"{label} is longer than {limit} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        raise StoreError(f"{label} holds control or formatting characters")
    return text or None


def check_customer_id(value: str) -> str:
    text = check_text("the customer id", value, MAX_CUSTOMER_ID_CHARS)
    if text is None:
        raise StoreError("the customer id is empty")
    return text

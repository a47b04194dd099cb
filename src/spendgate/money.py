"""Money is Decimal from the price table to the report; this is how it is written out."""

from __future__ import annotations

from decimal import Decimal


def format_usd(amount: Decimal) -> str:
    """Exact, without exponent or trailing zeros: Decimal('0.0040') -> '0.004'."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


def parse_usd(text: str) -> Decimal:
    return Decimal(text)

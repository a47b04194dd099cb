"""Presentation rounding that keeps sums: lines rounded to cents by largest remainder, so the
rounded lines add up to the rounded total (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")


def round_total(amount: Decimal, unit: Decimal = CENT) -> Decimal:
    return amount.quantize(unit, rounding=ROUND_HALF_EVEN)


def round_lines(amounts: Sequence[Decimal], unit: Decimal = CENT) -> list[Decimal]:
    """Each amount floored to ``unit``, then the units the rounded total still needs given,
    one each, to the largest remainders (ties: the earlier line). Sums to ``round_total``."""
    target = round_total(sum(amounts, Decimal(0)), unit)
    floors = [a.quantize(unit, rounding=ROUND_FLOOR) for a in amounts]
    left = int((target - sum(floors, Decimal(0))) / unit)
    order = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += unit
    return floors

"""Exact money arithmetic for reconciliation: sums that never round, ratios rounded on purpose,
and a split of an amount into shares that add up to it exactly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

__all__ = ("ZERO", "allocate", "exact_sum", "percent", "ratio")

ZERO = Decimal(0)
# Amounts have at most ~40 significant digits (15 before the point, 24 after): sums in this
# context are exact, whatever the caller's context says.
_EXACT = Context(prec=120, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
# The smallest share ``allocate`` hands out before the exact remainder: a trillionth of a dollar.
SHARE_QUANTUM = Decimal("1e-12")


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    with localcontext(_EXACT):
        return sum(values, ZERO)


def ratio(numerator: Decimal, denominator: Decimal, places: int = 6) -> Decimal | None:
    """``numerator / denominator`` rounded half-even to ``places`` decimals; None when dividing by 0."""
    if not denominator:
        return None
    with localcontext(_EXACT):
        return (numerator / denominator).quantize(Decimal(1).scaleb(-places))


def percent(part: Decimal, whole: Decimal, places: int = 4) -> Decimal | None:
    """``part`` as a percentage of ``whole``, rounded half-even to ``places`` decimals."""
    if not whole:
        return None
    with localcontext(_EXACT):
        return (part * 100 / whole).quantize(Decimal(1).scaleb(-places))


def allocate(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``amount`` split in proportion to ``weights``; the shares add up to ``amount`` exactly.

    Each share is rounded down to ``SHARE_QUANTUM``, the quanta left over go one by one to the
    largest remainders, and what is left below a quantum goes to the largest weight. With all
    weights zero (or none positive) the split is even.
    """
    if not weights:
        return []
    with localcontext(_EXACT):
        positive = [w if w > 0 else ZERO for w in weights]
        total = sum(positive, ZERO)
        if not total:
            positive, total = [Decimal(1)] * len(weights), Decimal(len(weights))
        exact = [amount * w / total for w in positive]
        shares = [value.quantize(SHARE_QUANTUM, rounding=ROUND_DOWN) for value in exact]
        left = amount - sum(shares, ZERO)
        by_remainder = sorted(range(len(shares)), key=lambda i: (exact[i] - shares[i], positive[i]), reverse=True)
        for index in by_remainder:
            if left < SHARE_QUANTUM:
                break
            shares[index] += SHARE_QUANTUM
            left -= SHARE_QUANTUM
        if left:
            largest = max(range(len(shares)), key=lambda i: positive[i])
            shares[largest] += left
        return shares

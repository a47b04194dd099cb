"""Where a budget's spend is heading: its window's spend projected to the window's end at
the rate seen so far (pure). Budgets show it (`budgets list`); alerts listen to it (a
forecast overrun)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from spendgate.budgets.windows import Window

# A projection needs both this share of the window and this much time behind it: one
# hour into a month, ten dollars would "project" to 7,200 — noise, not a warning.
MIN_ELAPSED_SHARE = 0.05
MIN_ELAPSED = timedelta(hours=1)
# Projections are estimates; a micro-dollar is finer than any budget is set in.
PROJECTION_QUANTUM = Decimal("0.000001")
_MICROSECOND = timedelta(microseconds=1)


def projected_spend(spent: Decimal, window: Window, now: datetime) -> Decimal | None:
    """Spend at the end of ``window`` if it goes on at the rate seen so far; None for a
    lifetime window, or before both 5% of the window and an hour of it have gone by."""
    if window.start is None or window.end is None:
        return None
    total = window.end - window.start
    elapsed = min(now - window.start, total)
    if elapsed < MIN_ELAPSED or elapsed < total * MIN_ELAPSED_SHARE:
        return None
    if elapsed == total:
        return spent
    projected = spent * (total // _MICROSECOND) / (elapsed // _MICROSECOND)
    return projected.quantize(PROJECTION_QUANTUM, ROUND_HALF_EVEN)

"""A budget's state in its current window, for `budgets list`, `budgets status` and the admin
API (pure)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.budgets.model import Budget
from spendgate.budgets.projection import projected_spend
from spendgate.budgets.windows import Window, iso_utc
from spendgate.money import format_usd


def budget_status(
    budget: Budget,
    window: Window,
    spent: Decimal,
    reserved: Decimal,
    now: datetime,
    *,
    approved_extra: Decimal = Decimal(0),
) -> dict[str, Any]:
    """``approved_extra``: extra spend approved for this window (store/approvals.py); the
    effective limit is the budget's plus it, and what remains is counted against that."""
    projected = projected_spend(spent, window, now)
    effective = budget.limit_usd + approved_extra
    remaining = effective - spent - reserved
    return {
        "name": budget.name,
        "scope": str(budget.scope),
        "period": budget.period,
        "timezone": budget.timezone,
        "window": window.key,
        "period_start": iso_utc(window.start),
        "period_end": iso_utc(window.end),
        "limit_usd": format_usd(budget.limit_usd),
        "approved_extra_usd": format_usd(approved_extra),
        "effective_limit_usd": format_usd(effective),
        "spent_usd": format_usd(spent),
        "reserved_usd": format_usd(reserved),
        "remaining_usd": format_usd(max(remaining, Decimal(0))),
        "projected_usd": format_usd(projected) if projected is not None else None,
        "alert_at": list(budget.alert_at),
        "soft": budget.soft,
    }

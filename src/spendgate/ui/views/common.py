"""What the pages share: today's date on the gateway's clock, a page's filters, money shown
as text, and figures derived from a report row (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request

from spendgate.money import format_usd
from spendgate.reports.spec import ReportRow
from spendgate.ui.filters import FilterError, Filters, parse_filters

NANO = Decimal("0.000000001")


def now(request: Request) -> datetime:
    return request.app.state.clock()


def today(request: Request) -> date:
    return now(request).date()


def filters_of(request: Request, fixed: Mapping[str, str] | None = None) -> Filters:
    try:
        return parse_filters(request.query_params, today(request), fixed=fixed)
    except FilterError as exc:
        raise HTTPException(400, str(exc)) from exc


def usd(amount: Decimal | None) -> str:
    return "unpriced" if amount is None else format_usd(amount)


def figures(row: ReportRow | None) -> dict[str, Any]:
    """A group's headline figures: cost, requests, error rate and cost per request."""
    if row is None or not row.requests:
        return {"cost_usd": Decimal(0), "requests": 0, "error_rate": None, "cost_per_request": None, "errors": 0}
    return {
        "cost_usd": row.cost_usd,
        "requests": row.requests,
        "errors": row.error_requests,
        "error_rate": Decimal(row.error_requests) / row.requests,
        # A ratio to read, not a sum to reconcile: to the nano-dollar.
        "cost_per_request": (row.cost_usd / row.requests).quantize(NANO) if row.cost_known else None,
    }


def percent(ratio: Decimal | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f}%"


def project_path(name: str) -> str:
    return f"/ui/projects/{quote(name, safe='')}"


def team_path(name: str) -> str:
    return f"/ui/teams/{quote(name, safe='')}"


def day_start(day: date, plus_days: int = 0) -> datetime:
    """The UTC midnight starting ``day`` (+ ``plus_days``): a range's bounds for raw events."""
    return datetime.combine(day + timedelta(days=plus_days), time(), UTC)

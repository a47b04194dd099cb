"""Budgets: each visible budget's current window (spent, reserved, remaining, projected) as
the gateway's enforcer sees it, and a burn chart of the chosen budget's window."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.access.model import Viewer
from spendgate.budgets.model import Scope
from spendgate.money import format_usd
from spendgate.reports.spec import ReportQuery, Where
from spendgate.ui.auth import read, require_viewer
from spendgate.ui.registry import Page
from spendgate.ui.series import spend_series
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.common import today

AT_RISK_USED = Decimal("0.8")  # spent + reserved over 80% of the limit
# Budget scope kind -> the report dimension it filters on (org: none; tag: tag:KEY).
_SCOPE_DIMENSION = {"team": "team", "project": "project", "key": "key", "customer": "customer", "feature": "feature"}


def at_risk(status: dict[str, Any]) -> bool:
    """Whether a budget's window is close to its limit or on course to pass it (pure)."""
    limit = Decimal(status.get("effective_limit_usd") or status["limit_usd"])  # approved extra included
    used = Decimal(status["spent_usd"]) + Decimal(status["reserved_usd"])
    projected = status.get("projected_usd")
    return used >= limit * AT_RISK_USED or (projected is not None and Decimal(projected) >= limit)


async def visible_statuses(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    """The current window of every budget this viewer may see (the admin API's rule)."""
    statuses_of = request.app.state.budget_statuses
    if statuses_of is None:
        return []
    statuses = await statuses_of()
    if viewer.is_admin:
        return statuses
    keys = await read(request, lambda store: store.list_keys())
    scopes = viewer.budget_scopes(keys) or frozenset()
    return [s for s in statuses if s["scope"] in scopes]


def scope_filter(scope: Scope) -> Where:
    """The report filter of a budget's scope (pure)."""
    if scope.kind == "tag":
        name, _, value = (scope.value or "").partition("=")
        return ((f"tag:{name}", (value,)),)
    dim = _SCOPE_DIMENSION.get(scope.kind)
    return ((dim, (scope.value,)),) if dim else ()


def _day(text: str) -> date:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


async def _burn_chart(request: Request, viewer: Viewer, status: dict[str, Any]) -> dict[str, Any]:
    """The window's spend so far, day by day (UTC days, summed from the report), against the
    limit and the projection's straight line to the window's end."""
    start = _day(status["period_start"])
    last = (datetime.fromisoformat(status["period_end"].replace("Z", "+00:00")) - timedelta(microseconds=1)).date()
    until = max(start, min(last, today(request)))
    query = ReportQuery(
        by=("day",),
        since=start,
        until=until,
        visible=viewer.visibility,
        where=scope_filter(Scope.parse(status["scope"])),
    )
    report = await read(request, lambda store: store.report(query))
    series = spend_series(report.rows, None, start, last, "day")
    days = len(series.buckets)
    running, burned = Decimal(0), []
    for day, value in zip(series.buckets, series.totals, strict=True):
        running += value
        burned.append(format_usd(running) if day <= until else None)
    projected = Decimal(status["projected_usd"]) if status.get("projected_usd") else None
    lines = [
        {"label": "spent", "values": burned},
        {"label": "limit", "values": [status["limit_usd"]] * days},
    ]
    if projected is not None:
        lines.append({"label": "projected", "values": [format_usd(projected * (i + 1) / days) for i in range(days)]})
    return {
        "label": f"{status['name']}: spend in the window (USD, UTC days)",
        "x": series.chart("")["x"],
        "series": lines,
    }


async def budgets(request: Request) -> Response:
    viewer = await require_viewer(request)
    statuses = await visible_statuses(request, viewer)
    chosen_name = request.query_params.get("budget")
    chosen = next((s for s in statuses if s["name"] == chosen_name), statuses[0] if statuses else None)
    chart = None
    if chosen is not None:
        chart = await _burn_chart(request, viewer, chosen)
    table = budgets_table("budgets", "Budgets", statuses)
    context = {"title": "Budgets", "chosen": chosen, "charts": {"burn-chart": chart} if chart else {}}
    return respond(request, View("budgets.html", context, [table]))


def budgets_table(name: str, title: str, statuses: list[dict[str, Any]]) -> Table:
    table = Table(
        name,
        title,
        (
            Column("name", "budget"),
            Column("scope", "scope"),
            Column("period", "period"),
            Column("limit_usd", "limit (USD)", "money"),
            Column("approved_extra_usd", "approved extra (USD)", "money"),
            Column("effective_limit_usd", "effective limit (USD)", "money"),
            Column("spent_usd", "spent (USD)", "money"),
            Column("reserved_usd", "reserved (USD)", "money"),
            Column("remaining_usd", "remaining (USD)", "money"),
            Column("projected_usd", "projected (USD)", "money"),
            Column("used", "used", "ratio"),
        ),
        row_testid="budget-row",
        empty="No budget here.",
    )
    for status in statuses:
        limit = Decimal(status.get("effective_limit_usd") or status["limit_usd"])  # approved extra included
        used = (Decimal(status["spent_usd"]) + Decimal(status["reserved_usd"])) / limit if limit else None
        table.rows.append(
            {
                **{k: status[k] for k in ("name", "scope", "period")},
                **{
                    k: None if status[k] is None else Decimal(status[k])
                    for k in (
                        "limit_usd",
                        "approved_extra_usd",
                        "effective_limit_usd",
                        "spent_usd",
                        "reserved_usd",
                        "remaining_usd",
                        "projected_usd",
                    )
                },
                "used": used,
                "_link_name": f"/ui/budgets?budget={status['name']}",
            }
        )
    return table


PAGES = (Page("/ui/budgets", budgets, nav="Budgets"),)

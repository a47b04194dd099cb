"""Budgets: each visible budget's current window (spent, reserved, remaining, projected) as
the gateway's enforcer sees it, and a burn chart of the chosen budget's window."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.access.model import Viewer
from spendgate.budgets.forecast import ForecastParams, forecast_window
from spendgate.budgets.model import Scope
from spendgate.budgets.windows import Window
from spendgate.reports.spec import ReportQuery, Where
from spendgate.ui.auth import read, require_viewer
from spendgate.ui.burn import burn_lines
from spendgate.ui.registry import Page
from spendgate.ui.series import spend_series
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.common import now as clock_now

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


async def _burn_chart(request: Request, viewer: Viewer, status: dict[str, Any]) -> dict[str, Any] | None:
    """The window's spend so far, day by day (UTC days, summed from the report), against the
    limit, and "at this pace": the weekday-aware forecast (``budgets/forecast.py``) of the
    window from the last four weeks' daily spend, as ``spendgate forecast`` makes it. None for
    a lifetime budget: no window end to chart towards."""
    if status["period_start"] is None or status["period_end"] is None:
        return None
    start = _day(status["period_start"])
    window_end = datetime.fromisoformat(status["period_end"].replace("Z", "+00:00"))
    last = (window_end - timedelta(microseconds=1)).date()
    now = clock_now(request)
    until = max(start, min(last, now.date()))
    params = ForecastParams()
    where = scope_filter(Scope.parse(status["scope"]))
    history_since = min(start, now.date() - timedelta(days=params.lookback_days + 1))
    query = ReportQuery(by=("day",), since=history_since, until=until, visible=viewer.visibility, where=where)
    report = await read(request, lambda store: store.report(query))
    series = spend_series(report.rows, None, start, last, "day")
    daily = {date.fromisoformat(str(row.dims["day"])[:10]): row.cost_usd for row in report.rows}
    window = Window(status["window"], datetime.fromisoformat(status["period_start"].replace("Z", "+00:00")), window_end)
    limit = Decimal(status.get("effective_limit_usd") or status["limit_usd"])  # approved extra included, as enforced
    forecast = forecast_window(daily, Decimal(status["spent_usd"]), window, "UTC", now, limit=limit, params=params)
    lines = burn_lines(series.buckets, series.totals, until, limit, forecast)
    return {
        "label": f"{status['name']}: spend in the window and at this pace (USD, UTC days)",
        "x": series.chart("")["x"],
        **lines,
    }


async def budgets(request: Request) -> Response:
    viewer = await require_viewer(request)
    statuses = await visible_statuses(request, viewer)
    chosen_name = request.query_params.get("budget")
    chosen = next((s for s in statuses if s["name"] == chosen_name), statuses[0] if statuses else None)
    chart = None if chosen is None else await _burn_chart(request, viewer, chosen)
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
            Column("projected_usd", "linear pace (USD)", "money"),
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

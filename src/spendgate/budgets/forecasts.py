"""``spendgate forecast``: the weekday-aware forecast (``forecast``, pure) fed from the
ledger, per budget (its own window, limit and run-out day) or per value of a dimension
(this UTC month).

Daily history comes from the daily rollups in UTC days; a budget in another timezone is
forecast on UTC days too (its window and spent are its own, exact), which shifts a few
hours of each day's history: a forecast's interval is far wider than that.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.budgets.forecast import Forecast, ForecastParams, forecast_window
from spendgate.budgets.windows import window_for
from spendgate.ledger.store.anomalies import scope_where
from spendgate.money import format_usd
from spendgate.reports.spec import ReportQuery


def _daily(store: Any, since: date, until: date, by: str | None, where: Any = ()) -> dict[Any, dict[date, Decimal]]:
    dims = ("day",) if by is None else ("day", by)
    series: dict[Any, dict[date, Decimal]] = {}
    for row in store.report(ReportQuery(by=dims, since=since, until=until, where=where)).rows:
        day = date.fromisoformat(str(row.dims["day"]))
        group = None if by is None else row.dim_values()[by]
        series.setdefault(group, {})[day] = row.cost_usd
    return series


def _json(forecast: Forecast, limit: Decimal | None) -> dict[str, Any]:
    return {
        "spent_usd": format_usd(forecast.spent_usd),
        "projected_usd": format_usd(forecast.projected_usd),
        "low_usd": format_usd(forecast.low_usd),
        "high_usd": format_usd(forecast.high_usd),
        "runs_out_on": forecast.runs_out_on.isoformat() if forecast.runs_out_on else None,
        "overrun": limit is not None and forecast.overrun(limit) is not None,
    }


def budget_forecasts(store: Any, now: datetime, params: ForecastParams | None = None) -> list[dict[str, Any]]:
    """Each budget with a period: where its window will end, and the day it runs out."""
    params = params or ForecastParams()
    rows = []
    today = now.astimezone(UTC).date()
    for budget in store.list_budgets():
        window = window_for(budget.period, budget.timezone, now)
        if window.start is None:
            continue  # a lifetime budget has no period end to forecast
        history = _daily(
            store, today - timedelta(days=params.lookback_days + 1), today, None, scope_where(budget.scope)
        )
        spent = store.spend(budget.scope, window.start, now)
        forecast = forecast_window(
            history.get(None, {}), spent, window, "UTC", now, limit=budget.limit_usd, params=params
        )
        if forecast is None:
            continue
        rows.append(
            {
                "budget": budget.name,
                "scope": str(budget.scope),
                "period": budget.period,
                "window": window.key,
                "limit_usd": format_usd(budget.limit_usd),
                **_json(forecast, budget.limit_usd),
            }
        )
    return rows


def scope_forecasts(store: Any, by: str, now: datetime, params: ForecastParams | None = None) -> list[dict[str, Any]]:
    """This UTC month's forecast for every value of ``by`` with spend lately (``org`` for "org")."""
    params = params or ForecastParams()
    window = window_for("month", "UTC", now)
    assert window.start is not None
    today = now.astimezone(UTC).date()
    first = min(today - timedelta(days=params.lookback_days + 1), window.start.date())
    daily = _daily(store, first, today, None if by == "org" else by)
    rows = []
    for group, series in sorted(daily.items(), key=lambda item: str(item[0])):
        # The month so far from the daily series (today's partial day included).
        spent = sum((cost for day, cost in series.items() if day >= window.start.date()), Decimal(0))
        forecast = forecast_window(series, spent, window, "UTC", now, params=params)
        if forecast is not None:
            rows.append({by: group if group is not None else "org", "window": window.key, **_json(forecast, None)})
    return rows

"""``spendgate forecast``: the weekday-aware forecast (``forecast``, pure) fed from the
ledger, per budget (its own window, effective limit — its own plus extra spend approved for the
window — and run-out day) or per value of a dimension
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
from spendgate.budgets.model import Budget
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


def budget_history(
    store: Any, budget: Budget, now: datetime, params: ForecastParams | None = None
) -> dict[date, Decimal]:
    """The budget scope's daily spend (UTC days) over the forecast's lookback, up to today."""
    params = params or ForecastParams()
    today = now.astimezone(UTC).date()
    since = today - timedelta(days=params.lookback_days + 1)
    return _daily(store, since, today, None, scope_where(budget.scope)).get(None, {})


def budget_forecast(
    store: Any,
    budget: Budget,
    now: datetime,
    *,
    approved_extra: Decimal = Decimal(0),
    params: ForecastParams | None = None,
) -> dict[str, Any] | None:
    """Where the budget's current window will end, against its effective limit (its own
    plus ``approved_extra``, the extra spend approved for the window); None for a lifetime
    budget, which has no period end."""
    params = params or ForecastParams()
    window = window_for(budget.period, budget.timezone, now)
    if window.start is None:
        return None
    effective = budget.limit_usd + approved_extra
    spent = store.spend(budget.scope, window.start, now)
    history = budget_history(store, budget, now, params)
    forecast = forecast_window(history, spent, window, "UTC", now, limit=effective, params=params)
    if forecast is None:
        return None
    return {
        "budget": budget.name,
        "scope": str(budget.scope),
        "period": budget.period,
        "window": window.key,
        "limit_usd": format_usd(budget.limit_usd),
        "approved_extra_usd": format_usd(approved_extra),
        "effective_limit_usd": format_usd(effective),
        **_json(forecast, effective),
    }


def budget_forecasts(store: Any, now: datetime, params: ForecastParams | None = None) -> list[dict[str, Any]]:
    """Each budget with a period: where its window will end, and the day it runs out, against
    its effective limit."""
    extras = store.approved_extras()
    rows = []
    for budget in store.list_budgets():
        window = window_for(budget.period, budget.timezone, now)
        extra = extras.get(f"{budget.name}@{window.key}", Decimal(0))
        row = budget_forecast(store, budget, now, approved_extra=extra, params=params)
        if row is not None:
            rows.append(row)
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

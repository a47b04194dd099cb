"""Period-end forecasts: weekday-aware, with an interval, and the day a budget runs out (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from spendgate.anomalies.synthetic import ScopeShape, synthetic_requests
from spendgate.budgets.forecast import ForecastParams, forecast_window, weekday_factors
from spendgate.budgets.projection import projected_spend
from spendgate.budgets.windows import window_for


def days(first: date, last: date, cost: Callable[[date], Decimal]) -> dict[date, Decimal]:
    out, day = {}, first
    while day <= last:
        out[day] = cost(day)
        day += timedelta(days=1)
    return out


def weekdays_only(day: date) -> Decimal:
    return Decimal(100) if day.weekday() < 5 else Decimal(0)


def test_a_weekday_scope_is_not_projected_across_the_weekend() -> None:
    daily = days(date(2026, 1, 1), date(2026, 2, 12), weekdays_only)
    now = datetime(2026, 2, 13, 0, 0, tzinfo=UTC)  # Friday 13th, midnight: Feb 2-12 are spent
    window = window_for("month", "UTC", now)
    spent = sum((cost for day, cost in daily.items() if day.month == 2), Decimal(0))
    forecast = forecast_window(daily, spent, window, "UTC", now)
    assert forecast is not None
    # Spent: Feb 2-6 and 9-12. Left: Fri 13, 16-20, 23-27 = 11 weekdays at $100, weekends $0.
    assert spent == 900 and forecast.projected_usd == 2000
    assert forecast.expected_by_day[date(2026, 2, 14)] == 0
    assert forecast.low_usd == forecast.high_usd == 2000  # a noiseless history: no spread
    # The straight line this replaces: 900 over 12 days is 2,100 over 28.
    assert projected_spend(spent, window, now) == 2100


def test_the_day_a_budget_runs_out() -> None:
    daily = days(date(2026, 1, 1), date(2026, 2, 12), weekdays_only)
    now = datetime(2026, 2, 13, 0, 0, tzinfo=UTC)
    window = window_for("month", "UTC", now)
    forecast = forecast_window(daily, Decimal(900), window, "UTC", now, limit=Decimal(1500))
    # 900 + Fri 13 (1,000) + Mon 16 to Fri 20 (1,100 ... 1,500): Friday the 20th, not the 19th.
    assert forecast is not None and forecast.runs_out_on == date(2026, 2, 20)
    assert forecast.overrun(Decimal(1500)) == 2000
    never = forecast_window(daily, Decimal(900), window, "UTC", now, limit=Decimal(5000))
    assert never is not None and never.runs_out_on is None and never.overrun(Decimal(5000)) is None
    # Already spent: today.
    spent = forecast_window(daily, Decimal(900), window, "UTC", now, limit=Decimal(900))
    assert spent is not None and spent.runs_out_on == date(2026, 2, 13)


def test_the_rest_of_today_is_pro_rata_in_the_budgets_timezone() -> None:
    daily = days(date(2026, 1, 1), date(2026, 2, 12), lambda _: Decimal(24))
    now = datetime(2026, 2, 13, 23, 0, tzinfo=UTC)  # 18:00 in New York: 6 hours of the 13th left there
    window = window_for("month", "America/New_York", now)
    forecast = forecast_window(daily, Decimal(300), window, "America/New_York", now)
    assert forecast is not None
    assert forecast.expected_by_day[date(2026, 2, 13)] == 6
    assert forecast.projected_usd == 300 + 6 + 15 * 24  # then the 14th to the 28th


def test_without_history_the_burn_rate_so_far_is_used() -> None:
    now = datetime(2026, 2, 11, 0, 0, tzinfo=UTC)  # 10 days into February, $50 a day
    window = window_for("month", "UTC", now)
    forecast = forecast_window({}, Decimal(500), window, "UTC", now, limit=Decimal(1000))
    assert forecast is not None
    assert forecast.projected_usd == 1400 and forecast.runs_out_on == date(2026, 2, 20)
    assert forecast.low_usd < 1400 < forecast.high_usd  # unknown noise: a wide interval, not none
    assert forecast_window({}, Decimal(1), window_for("total", "UTC", now), "UTC", now) is None


def test_weekday_factors_need_two_weeks() -> None:
    daily = days(date(2026, 1, 5), date(2026, 1, 11), weekdays_only)  # one week
    assert set(weekday_factors(daily, 14).values()) == {Decimal(1)}
    daily = days(date(2026, 1, 5), date(2026, 1, 18), weekdays_only)
    factors = weekday_factors(daily, 14)
    assert factors[0] == Decimal("1.4") and factors[6] == 0


def test_the_interval_holds_the_realised_month_end_in_most_seeds() -> None:
    # Stationary synthetic spend (weekday and hour patterns, busy days, heavy-tailed
    # requests): forecast February on the 10th at noon, then compare with what came.
    shape = ScopeShape(peak_requests_per_hour=30, request_median_usd=0.1)
    now = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
    window = window_for("month", "UTC", now)
    inside, widths, errors = 0, [], []
    for seed in range(20):
        requests = synthetic_requests(seed, datetime(2026, 1, 1, tzinfo=UTC), 59, shape)
        daily: dict[date, Decimal] = {}
        for r in requests:
            daily[r.at.date()] = daily.get(r.at.date(), Decimal(0)) + r.cost
        spent = sum((r.cost for r in requests if window.start <= r.at < now), Decimal(0))
        realised = sum((r.cost for r in requests if window.contains(r.at)), Decimal(0))
        history = {day: cost for day, cost in daily.items() if day < now.date()}
        forecast = forecast_window(history, spent, window, "UTC", now)
        assert forecast is not None
        inside += forecast.low_usd <= realised <= forecast.high_usd
        widths.append((forecast.high_usd - forecast.low_usd) / forecast.projected_usd)
        errors.append(abs(forecast.projected_usd - realised) / realised)
    assert inside >= 14  # an 80% interval: 16 of 20 expected
    assert sorted(widths)[10] < Decimal("0.25")  # and not by being uselessly wide
    assert sorted(errors)[10] < Decimal("0.08")


def test_params_are_checked() -> None:
    with pytest.raises(ValueError):
        ForecastParams(interval=Decimal(1))
    with pytest.raises(ValueError):
        ForecastParams(level_days=40)

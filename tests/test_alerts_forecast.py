"""``budget.forecast_overrun`` by the weekday-aware forecast, against the effective limit: on
crafted history where the linear projection sees no overrun, pure and through the gateway
(the openai SDK, the real ledger and alert center, both backends)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from spendgate.alerts.center import AlertCenter, Observation, alerts_due
from spendgate.alerts.dispatcher import AlertDispatcher
from spendgate.alerts.rules import FORECAST_OVERRUN
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.projection import projected_spend
from spendgate.budgets.windows import window_for
from spendgate.ledger.events import UsageEvent
from tests.conftest import Gateway
from tests.test_alerts_support import Clock, Store, budget

D = Decimal
# Three and a half days into December: the linear projection is judged (past 5% of the month).
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
DEC = window_for("month", "UTC", NOW)
# The scope spent $4-6 a day through November, then a quiet start of December ($2 a day, $4
# this morning): the month so far projects linearly to $88.57, but the last weeks' level
# (about $4.4 a day) to about $125, over a $100 limit.
HISTORY = {date(2026, 11, 6) + timedelta(days=i): D(4 + i % 3) for i in range(25)}
HISTORY.update({date(2026, 12, day): D(2) for day in (1, 2, 3)})
TODAY_SO_FAR = D(4)
SPENT = sum((cost for day, cost in HISTORY.items() if day >= date(2026, 12, 1)), TODAY_SO_FAR)


def test_the_forecast_not_the_linear_projection_decides() -> None:
    monthly = budget(limit="100", alert_at=())
    linear = projected_spend(SPENT, DEC, NOW)
    assert linear is not None and linear < monthly.limit_usd  # the old rule: no alert

    [alert] = alerts_due(Observation(monthly, DEC, SPENT, history=HISTORY), NOW)
    assert alert.kind == FORECAST_OVERRUN
    payload = alert.payload
    assert D(payload["projected_usd"]) > D(100) > linear
    assert D(payload["low_usd"]) <= D(payload["projected_usd"]) <= D(payload["high_usd"])
    assert payload["runs_out_on"] is not None and payload["runs_out_on"] <= "2026-12-31"
    assert payload["budget"]["effective_limit_usd"] == "100"

    # Extra spend approved for the window lifts the effective limit above the forecast.
    assert alerts_due(Observation(monthly, DEC, SPENT, history=HISTORY, approved_extra=D(50)), NOW) == []
    # Without history the forecast is the window's burn rate: the linear answer, no alert.
    assert alerts_due(Observation(monthly, DEC, SPENT), NOW) == []


def _event(i: int, ts: datetime, cost: Decimal) -> UsageEvent:
    return UsageEvent(
        id=f"history-{i}",
        ts=ts,
        provider="openai",
        model="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        stream=False,
        status="ok",
        http_status=200,
        project="support",
        team="cx",
        key="bot",
        output_tokens=10,
        cost_usd=cost,
    )


def test_gateway_fires_the_forecast_overrun_from_ledger_history(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(clock=Clock(NOW))
    gateway.team("cx")
    gateway.project("support", "cx")
    secret = gateway.key("bot", project="support")
    events = [
        _event(i, datetime(d.year, d.month, d.day, 12, tzinfo=UTC), cost) for i, (d, cost) in enumerate(HISTORY.items())
    ]
    events.append(_event(99, NOW - timedelta(hours=6), TODAY_SO_FAR))
    gateway.store.append_events(events)
    scope = Scope.parse("project:support")
    gateway.store.create_budget(Budget("tight", scope, D(100), "month", alert_at=()))
    gateway.store.create_budget(Budget("roomy", scope, D(100), "month", alert_at=()))
    approval = gateway.store.request_approval("roomy", DEC.key, str(scope), NOW)
    gateway.store.decide_approval(approval["id"], "approved", NOW, extra=D(50), reason="quarter-end push")
    gateway.wait_for_directory()

    answer = gateway.openai(secret).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    assert answer.choices
    gateway.flush()
    assert gateway.app.loop is not None
    asyncio.run_coroutine_threadsafe(gateway.app.alerts.flush(), gateway.app.loop).result(10)

    alerts = gateway.store.list_alerts()
    assert [(a["kind"], a["budget"]) for a in alerts] == [(FORECAST_OVERRUN, "tight")]
    payload = alerts[0]["payload"]
    assert D(payload["projected_usd"]) > D(100) > projected_spend(D(payload["spent_usd"]), DEC, NOW)
    assert D(payload["spent_usd"]) > SPENT  # the request just made counts too
    assert payload["budget"]["effective_limit_usd"] == "100"


async def test_a_budgets_forecast_is_judged_again_after_a_minute_or_a_move(tmp_path: Path) -> None:
    """Forecasts cost far more than thresholds: under steady traffic one budget's is judged at
    most once a minute, unless its spend moved by 1% of the limit since."""
    store = Store(tmp_path / "alerts.db")
    clock = Clock(datetime(2026, 11, 10, tzinfo=UTC))  # 9 of November's 30 days gone, no history
    center = AlertCenter(store, AlertDispatcher(store, poll_interval=0.02, clock=clock), clock=clock)
    center.start()
    monthly = budget(limit="100", alert_at=())
    window = window_for("month", "UTC", clock())

    async def spend(amount: str) -> list[str]:
        center.budget_spent(monthly, window, D(amount))
        await center.flush()
        return [a["kind"] for a in store.list_alerts()]

    try:
        assert await spend("30") == []  # projects to exactly 100: no overrun
        assert await spend("30.5") == []  # 101.67, but judged a moment ago and moved under $1
        clock.now += timedelta(seconds=61)
        assert await spend("30.5") == [FORECAST_OVERRUN]
    finally:
        await center.aclose()
        store.close()

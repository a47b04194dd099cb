"""The alert center: what the gateway reports, and the alerts that come of it (each once per
budget window), stored in a real SQLite file and delivered to a real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.alerts.center import AlertCenter
from spendgate.alerts.dispatcher import AlertDispatcher
from spendgate.alerts.rules import EXHAUSTED, FORECAST_OVERRUN, THRESHOLD_CROSSED
from spendgate.budgets.model import Budget
from spendgate.budgets.windows import window_for
from tests.test_alerts_support import Clock, Store, budget, running_receiver, until

D = Decimal
EARLY_NOV = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)  # too early in the month to forecast


class CountingStore(Store):
    """The real store, counting how often the center asks it to record an alert."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.record_calls = 0

    def record_alert(self, *args: Any, **kwargs: Any) -> bool:
        self.record_calls += 1
        return super().record_alert(*args, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(tmp_path / "alerts.db")
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(EARLY_NOV)


@pytest.fixture
async def center(store: CountingStore, clock: Clock) -> AsyncIterator[AlertCenter]:
    c = AlertCenter(store, AlertDispatcher(store, poll_interval=0.02, clock=clock), clock=clock)
    c.start()
    yield c
    await c.aclose()


def fired(store: Store) -> list[tuple[str, str, str, int | None]]:
    """(kind, budget, window, threshold) of every stored alert, oldest first."""
    return [(a["kind"], a["budget"], a["window"], a["threshold"]) for a in reversed(store.list_alerts(1000))]


async def spend(center: AlertCenter, b: Budget, clock: Clock, *amounts: str) -> None:
    for amount in amounts:
        center.budget_spent(b, window_for(b.period, b.timezone, clock()), D(amount))
        await center.flush()


async def test_each_threshold_fires_once_per_window(center: AlertCenter, store: CountingStore, clock: Clock) -> None:
    monthly = budget()
    await spend(center, monthly, clock, "10", "55", "60", "79.99", "85", "99", "100", "120", "500")
    nov = ("eng-monthly", "2026-11")
    assert fired(store) == [
        (THRESHOLD_CROSSED, *nov, 50),
        (THRESHOLD_CROSSED, *nov, 80),
        (THRESHOLD_CROSSED, *nov, 100),
        (EXHAUSTED, *nov, None),  # spend reached the limit of a blocking budget
    ]
    # The database was asked once per alert, not once per request.
    assert store.record_calls == 4
    first = store.list_alerts()[-1]["payload"]
    assert (first["spent_usd"], first["budget"]["period_start"]) == ("55", "2026-11-01T00:00:00Z")

    clock.now = datetime(2026, 12, 1, 0, 10, tzinfo=UTC)  # a new month: from zero again
    await spend(center, monthly, clock, "3", "50.01")
    assert fired(store)[4:] == [(THRESHOLD_CROSSED, "eng-monthly", "2026-12", 50)]


async def test_a_burst_is_evaluated_once(center: AlertCenter, store: CountingStore, clock: Clock) -> None:
    monthly = budget()
    window = window_for("month", "UTC", clock())
    for cents in range(1, 10_001):  # $0.01 … $100.00, without yielding to the loop
        center.budget_spent(monthly, window, D(cents) / 100)
    await center.flush()
    assert [t for *_, t in fired(store)] == [50, 80, 100, None]  # None: budget.exhausted
    assert store.record_calls == 4
    assert store.list_alerts()[0]["payload"]["spent_usd"] == "100"  # the latest spend is reported


async def test_soft_budgets_alert_too(center: AlertCenter, store: CountingStore, clock: Clock) -> None:
    soft = budget("soft-watch", limit="10", soft=True, period="day", alert_at=(75,))
    await spend(center, soft, clock, "7.5")
    center.budget_refused(soft, window_for("day", "UTC", clock()), D("11"), D("0"))  # never refuses
    await center.flush()
    assert fired(store) == [(THRESHOLD_CROSSED, "soft-watch", "2026-11-01", 75)]
    assert store.list_alerts()[0]["payload"]["budget"]["soft"] is True


async def test_forecast_overrun_once_per_window(center: AlertCenter, store: CountingStore, clock: Clock) -> None:
    monthly = budget(alert_at=())
    clock.now = datetime(2026, 11, 10, tzinfo=UTC)  # 9 of 30 days gone
    await spend(center, monthly, clock, "20", "31", "35", "40")
    assert fired(store) == [(FORECAST_OVERRUN, "eng-monthly", "2026-11", None)]
    payload = store.list_alerts()[0]["payload"]
    # 31 spent in 9 days projects to 31 * 30 / 9 over the month (20 projected to only 66.67).
    assert (payload["spent_usd"], payload["projected_usd"]) == ("31", "103.333333")

    clock.now = datetime(2026, 12, 1, 2, tzinfo=UTC)  # December: too early to say…
    await spend(center, monthly, clock, "5")
    assert len(fired(store)) == 1
    clock.now = datetime(2026, 12, 16, 12, tzinfo=UTC)  # …then half-way through, at twice the pace
    await spend(center, monthly, clock, "60")
    assert fired(store)[1:] == [(FORECAST_OVERRUN, "eng-monthly", "2026-12", None)]
    assert store.list_alerts()[0]["payload"]["projected_usd"] == "120"


async def test_first_exhausting_refusal_once_per_window(
    center: AlertCenter, store: CountingStore, clock: Clock
) -> None:
    daily = budget("daily-cap", limit="5", period="day", alert_at=())
    today = window_for("day", "UTC", clock())
    center.budget_refused(daily, today, D("1"), D("0.2"), exhausted=False)  # a request too large: no news
    await center.flush()
    assert fired(store) == []
    center.budget_refused(daily, today, D("4.9"), D("0.2"))
    center.budget_refused(daily, today, D("5"), D("0"))
    await center.flush()
    center.budget_refused(daily, today, D("5"), D("0.7"))
    await center.flush()
    assert fired(store) == [(EXHAUSTED, "daily-cap", "2026-11-01", None)]
    payload = store.list_alerts()[0]["payload"]
    assert (payload["spent_usd"], payload["reserved_usd"]) == ("4.9", "0.2")  # the first refusal
    tomorrow = window_for("day", "UTC", datetime(2026, 11, 2, 9, tzinfo=UTC))
    center.budget_refused(daily, tomorrow, D("5.01"), D("0"))
    await center.flush()
    assert fired(store)[1:] == [(EXHAUSTED, "daily-cap", "2026-11-02", None)]
    assert store.record_calls == 2


async def test_an_exhausting_refusal_crosses_100_percent_below_the_limit(
    center: AlertCenter, store: CountingStore, clock: Clock
) -> None:
    """Reservations stop spend just short of the limit; the refusal that finds the budget spent
    fires the 100% threshold (and any lower one not yet sent), at the refused request's time."""
    monthly = budget(alert_at=(50, 100, 150))
    window = window_for("month", "UTC", clock())
    crossing = datetime(2026, 11, 1, 0, 20, tzinfo=UTC)
    center.budget_spent(monthly, window, D("60"), crossing)
    await center.flush()
    refused_at = datetime(2026, 11, 1, 0, 25, tzinfo=UTC)
    center.budget_refused(monthly, window, D("99.98"), D("0"), exhausted=True, at=refused_at)
    await center.flush()
    assert fired(store) == [
        (THRESHOLD_CROSSED, "eng-monthly", "2026-11", 50),
        (THRESHOLD_CROSSED, "eng-monthly", "2026-11", 100),
        (EXHAUSTED, "eng-monthly", "2026-11", None),
    ]
    at = {(a["kind"], a["threshold"]): a["payload"]["at"] for a in store.list_alerts()}
    assert at[(THRESHOLD_CROSSED, 50)] == "2026-11-01T00:20:00Z"  # not the evaluation's (00:30)
    assert at[(THRESHOLD_CROSSED, 100)] == at[(EXHAUSTED, None)] == "2026-11-01T00:25:00Z"


async def test_a_threshold_carries_the_time_of_the_request_that_crossed_it(
    center: AlertCenter, store: CountingStore, clock: Clock
) -> None:
    monthly = budget()
    window = window_for("month", "UTC", clock())
    for minute, amount in [(1, "40"), (2, "51"), (3, "60"), (4, "81"), (5, "85")]:  # one evaluation for all
        center.budget_spent(monthly, window, D(amount), datetime(2026, 11, 1, 0, minute, tzinfo=UTC))
    await center.flush()
    at = {a["threshold"]: a["payload"]["at"] for a in store.list_alerts()}
    assert at == {50: "2026-11-01T00:02:00Z", 80: "2026-11-01T00:04:00Z"}


async def test_replicas_fire_once(store: CountingStore, clock: Clock, tmp_path: Path) -> None:
    other = Store(tmp_path / "alerts.db")
    centers = [AlertCenter(s, AlertDispatcher(s, poll_interval=0.02, clock=clock), clock=clock) for s in (store, other)]
    monthly = budget()
    window = window_for("month", "UTC", clock())
    for c in centers:
        c.start()
    for c in centers:
        c.budget_spent(monthly, window, D("81"))
    for c in centers:
        await c.flush()
        await c.aclose()
    other.close()
    assert [t for *_, t in fired(store)] == [50, 80]


async def test_alerts_reach_the_webhook_exactly_once(store: CountingStore, clock: Clock) -> None:
    with running_receiver() as (rx, url):
        store.add_webhook(f"{url}/hook", "k")
        center = AlertCenter(store, AlertDispatcher(store, poll_interval=0.02), clock=clock)
        center.start()
        monthly = budget()
        window = window_for("month", "UTC", clock())
        for amount in ("49", "52", "81", "90", "101", "102"):
            center.budget_spent(monthly, window, D(amount))
            await center.flush()
        await until(lambda: len(rx.requests) == 4)
        await center.aclose()
        bodies = [r.json() for r in rx.requests]
    assert sorted(b["threshold"] for b in bodies if "threshold" in b) == [50, 80, 100]
    assert sorted(b["event"] for b in bodies) == ["budget.exhausted", *["budget.threshold_crossed"] * 3]
    assert all(d["status"] == "delivered" for a in store.list_alerts() for d in a["deliveries"])


async def test_closing_evaluates_what_was_noted(store: CountingStore, clock: Clock) -> None:
    with running_receiver() as (rx, url):
        store.add_webhook(f"{url}/hook")
        center = AlertCenter(store, AlertDispatcher(store, poll_interval=60), clock=clock)
        center.start()
        center.budget_spent(budget(), window_for("month", "UTC", clock()), D("50"))
        await center.aclose()  # no flush: closing evaluates, records, and sends
        assert [r.json()["threshold"] for r in rx.requests] == [50]


async def test_flush_needs_a_running_center(store: CountingStore) -> None:
    center = AlertCenter(store, AlertDispatcher(store))
    with pytest.raises(RuntimeError, match="start"):
        await center.flush()
    await center.aclose()


async def test_a_burst_is_evaluated_once_and_flush_does_not_wait_for_the_interval(
    store: CountingStore, clock: Clock
) -> None:
    # An hour between evaluations: only flush (and closing) can get this one evaluated.
    center = AlertCenter(store, AlertDispatcher(store, poll_interval=60), clock=clock, evaluate_interval=3600)
    center.start()
    monthly = budget()
    window = window_for("month", "UTC", clock())
    for amount in ("10", "55", "85", "30"):  # the latest spend of the window is what counts
        center.budget_spent(monthly, window, D(amount))
    await center.flush()
    assert store.record_calls == 0  # 30 crosses nothing: the earlier observations were superseded
    center.budget_spent(monthly, window, D("85"))
    await center.flush()
    assert [t for *_, t in fired(store)] == [50, 80]
    await center.aclose()

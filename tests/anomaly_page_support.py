"""What the anomalies page tests share: anomalies recorded on the scopes of ``org_with_traffic``
(checkout's project suspended by its rule, the secret project's too, a key, the org), and
history days for a budget's forecast."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies.record import Anomaly, Driver
from spendgate.budgets.model import Scope
from spendgate.ledger.events import UsageEvent
from tests.access_support import SECRET_PROJECT

SUSPENDED = ("project:checkout", f"project:{SECRET_PROJECT}")
OTHERS = ("key:ranker-key", "org")
# Weekday spend around $0.0001 a day, uneven enough for the forecast to have an interval.
NOISY = [Decimal(x) for x in ("0.00007", "0.00013", "0.0001", "0.00005", "0.00016", "0.00009")]


def anomaly_on(scope: str, now: datetime, cost: Decimal = Decimal("12.5")) -> Anomaly:
    """An anomaly of ``scope`` over the hour ending ``now``."""
    return Anomaly(
        scope=scope,
        start=now - timedelta(hours=1),
        end=now,
        cost_usd=cost,
        expected_usd=Decimal("1.25"),
        score=Decimal("9.5"),
        drivers=(Driver("model", "gpt-4o-mini", Decimal("11.0"), Decimal("1.0")),),
    )


def record_anomalies(gateway: Any, now: datetime) -> dict[str, str]:
    """One live anomaly per scope (an hour ending now), the two project scopes suspended by
    their rules. Returns the anomalies' ids by scope."""
    store = gateway.store
    for scope in SUSPENDED:
        store.create_anomaly_rule(Scope.parse(scope), suspend=True)
    ids = {}
    for n, scope in enumerate((*SUSPENDED, *OTHERS)):
        anomaly = anomaly_on(scope, now, Decimal("12.5") + n)
        source = "live" if scope in SUSPENDED else "scan"
        ids[scope], inserted, _ = store.record_anomaly(
            anomaly, merge_gap=timedelta(minutes=30), source=source, now=now, alert_id=new_alert_id(now)
        )
        assert inserted
    gateway.wait_for_directory()
    return ids


def history(
    gateway: Any, project: str, team: str, days: list[datetime], costs: list[Decimal], feature: str | None = None
) -> None:
    """One priced request a day in ``project``, costing ``costs`` in turn (the forecast's daily
    history)."""
    gateway.store.append_events(
        [
            UsageEvent(
                id=f"hist-{project}-{feature}-{n}",
                ts=at,
                provider="openai",
                model="gpt-4o-mini",
                endpoint="/v1/chat/completions",
                stream=False,
                status="ok",
                http_status=200,
                project=project,
                team=team,
                key="checkout-key",
                feature=feature,
                cost_usd=costs[n % len(costs)],
            )
            for n, at in enumerate(days)
        ]
    )

"""The anomalies table's one guarantee across replicas, on both backends: writers racing to
record the same spike (from different window starts) make one anomaly, one alert, and at
most one suspension."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies.record import Anomaly
from spendgate.budgets.model import Scope
from tests.conftest import Gateway, open_test_store

T0 = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)
GAP = timedelta(minutes=30)


def test_racing_replicas_record_one_anomaly_and_one_alert(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(anomaly_interval=0)
    gateway.store.create_anomaly_rule(Scope.parse("key:bot"), True)
    gateway.store.add_webhook("http://127.0.0.1:9/hook")
    stores = [open_test_store(gateway.db_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[tuple[str, bool, bool]] = []

    def record(n: int) -> None:
        # Each replica saw the spike a few seconds apart: different starts and ends.
        start = T0 + timedelta(seconds=10 * n)
        anomaly = Anomaly("key:bot", start, start + timedelta(minutes=4), Decimal("2"), Decimal("0.2"), Decimal("8"))
        barrier.wait()
        outcomes.append(
            stores[n].record_anomaly(anomaly, merge_gap=GAP, source="live", now=anomaly.end, alert_id=new_alert_id(T0))
        )

    threads = [threading.Thread(target=record, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(new for _, new, _ in outcomes) == [False] * 5 + [True]
    [anomaly] = gateway.store.list_anomalies()
    assert {anomaly_id for anomaly_id, _, _ in outcomes} == {anomaly["id"]}
    assert anomaly["start"].startswith("2026-11-17T14:00:00") and anomaly["end"].startswith("2026-11-17T14:04:50")
    assert [a["kind"] for a in gateway.store.list_alerts()] == ["spend.anomaly"]
    assert [s["anomaly_id"] for s in gateway.store.list_suspensions()] == [anomaly["id"]]

    # Resolved, the next spike is a new anomaly (and a new alert); within the gap it would not be.
    gateway.store.set_anomaly_status(anomaly["id"], "resolved")
    later = Anomaly(
        "key:bot", T0 + timedelta(minutes=10), T0 + timedelta(minutes=14), Decimal(3), Decimal(0), Decimal(9)
    )
    _, new, _ = gateway.store.record_anomaly(
        later, merge_gap=GAP, source="live", now=later.end, alert_id=new_alert_id(T0)
    )
    assert new and len(gateway.store.list_alerts()) == 2

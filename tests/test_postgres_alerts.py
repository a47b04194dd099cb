"""Webhooks, alerts and deliveries on PostgreSQL: every test of ``test_alerts_storage.py``
runs here again on PostgresStore (the same test functions, given this module's ``store``
and ``replicas``: two stores on one schema acting as two gateway replicas), and claims are
shown to skip what another replica is claiming rather than wait for it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from spendgate.ledger.store.dialects.postgresql import PostgresStore
from tests import test_alerts_storage
from tests.test_alerts_support import NOW

for _name, _test in vars(test_alerts_storage).items():
    if _name.startswith("test_") and callable(_test):
        globals()[_name] = _test


@pytest.fixture
def store(postgres_db: Callable[[], str]) -> Iterator[PostgresStore]:
    s = PostgresStore(postgres_db())
    yield s
    s.close()


@pytest.fixture
def replicas(store: PostgresStore) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    other = PostgresStore(store.url)
    yield store, other
    other.close()


def test_a_claim_skips_rows_another_replica_holds_instead_of_waiting(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    a.add_webhook("https://example.com/a")
    for n in range(4):
        test_alerts_storage.record(a, f"alrt_{n}", budget=f"b{n}")
    with psycopg.connect(a.url) as holder:
        # Another replica mid-claim: two of the four due rows locked, its transaction open.
        held = holder.execute("SELECT alert_id FROM alert_deliveries ORDER BY alert_id LIMIT 2 FOR UPDATE").fetchall()
        started = time.monotonic()
        claimed = b.claim_deliveries(NOW, 10, 30)
        assert time.monotonic() - started < 2  # did not wait for the lock holder
        assert sorted(d.alert_id for d in claimed) == ["alrt_2", "alrt_3"]
        assert [r[0] for r in held] == ["alrt_0", "alrt_1"]
    # the holder is gone without leasing anything: its rows are due for whoever asks next
    assert sorted(d.alert_id for d in a.claim_deliveries(NOW, 10, 30)) == ["alrt_0", "alrt_1"]


def test_payload_is_kept_as_recorded(store: PostgresStore) -> None:
    payload = {
        "event": "budget.threshold_crossed",
        "id": "alrt_x",
        "z": 1,
        "a": {"nested": "0.10"},
        "spent_usd": "80.50",
    }
    store.add_webhook("https://example.com/a")
    assert store.record_alert("budget.threshold_crossed", "eng", "2026-11", 80, payload, now=NOW)
    [alert] = store.list_alerts()
    assert alert["payload"] == payload
    assert list(alert["payload"]) == list(payload)  # key order too
    assert alert["created_at"] == "2026-11-10T12:00:00.000000Z"
    [delivery] = store.claim_deliveries(NOW, 1, 30)
    assert list(delivery.payload) == list(payload)

"""Webhooks, alerts and deliveries in SQLite, including two stores on one file acting as
two gateway replicas."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spendgate.alerts.rules import THRESHOLD_CROSSED
from spendgate.ledger.store import StoreError
from tests.test_alerts_support import NOW, Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


@pytest.fixture
def replicas(db: Path, store: Store) -> Iterator[tuple[Store, Store]]:
    other = Store(db)
    yield store, other
    other.close()


def payload(alert_id: str, threshold: int = 80) -> dict[str, Any]:
    return {"event": THRESHOLD_CROSSED, "id": alert_id, "threshold": threshold, "spent_usd": "80.5"}


def record(s: Store, alert_id: str, threshold: int = 80, budget: str = "eng", window: str = "2026-11") -> bool:
    return s.record_alert(THRESHOLD_CROSSED, budget, window, threshold, payload(alert_id, threshold), now=NOW)


# --- webhooks -----------------------------------------------------------------------------
def test_webhooks_are_configuration_and_never_show_their_secret(store: Store) -> None:
    version = store.config_version()
    signed = store.add_webhook("https://example.com/hooks/a", "s3cret", "json")
    plain = store.add_webhook("https://hooks.slack.com/services/T/B/X", None, "slack")
    assert store.config_version() == version + 2
    assert signed["id"].startswith("wh_") and signed["has_secret"] is True
    assert plain["has_secret"] is False and plain["format"] == "slack"
    listed = store.list_webhooks()
    assert [h["url"] for h in listed] == ["https://example.com/hooks/a", "https://hooks.slack.com/services/T/B/X"]
    assert all("secret" not in h for h in listed) and "s3cret" not in repr(listed)
    assert store.webhook(signed["id"])["secret"] == "s3cret"
    assert store.webhook("https://example.com/hooks/a")["id"] == signed["id"]
    assert store.webhook(plain["id"])["secret"] is None


def test_webhook_mistakes_are_store_errors(store: Store) -> None:
    store.add_webhook("https://example.com/hook")
    with pytest.raises(StoreError, match="already exists"):
        store.add_webhook("https://example.com/hook")
    with pytest.raises(StoreError, match="bad webhook URL"):
        store.add_webhook("example.com/hook")
    with pytest.raises(StoreError, match="bad webhook format"):
        store.add_webhook("https://example.com/other", fmt="xml")
    with pytest.raises(StoreError, match="unknown webhook"):
        store.remove_webhook("wh_nope")
    with pytest.raises(StoreError, match="unknown webhook"):
        store.webhook("https://example.com/other")


def test_removing_a_webhook_drops_its_pending_deliveries(store: Store) -> None:
    a = store.add_webhook("https://example.com/a")
    b = store.add_webhook("https://example.com/b")
    record(store, "alrt_1")
    assert store.remove_webhook("https://example.com/a")["id"] == a["id"]
    assert [h["id"] for h in store.list_webhooks()] == [b["id"]]
    [alert] = store.list_alerts()
    assert [d["webhook_id"] for d in alert["deliveries"]] == [b["id"]]
    assert [d.webhook_id for d in store.claim_deliveries(NOW, 10, 30)] == [b["id"]]


# --- alerts ---------------------------------------------------------------------------------
def test_an_alert_is_recorded_once_with_one_delivery_per_webhook(store: Store) -> None:
    store.add_webhook("https://example.com/a", "k")
    store.add_webhook("https://example.com/b", fmt="slack")
    version = store.config_version()
    assert record(store, "alrt_1") is True
    assert record(store, "alrt_2") is False  # same budget, window and threshold
    assert record(store, "alrt_3", threshold=100) is True
    assert record(store, "alrt_4", window="2026-12") is True  # a new period fires again
    assert store.config_version() == version  # alerts are not configuration
    alerts = store.list_alerts()
    assert [a["id"] for a in alerts] == ["alrt_4", "alrt_3", "alrt_1"]
    first = alerts[-1]
    assert (first["kind"], first["budget"], first["window"], first["threshold"]) == (
        THRESHOLD_CROSSED,
        "eng",
        "2026-11",
        80,
    )
    assert first["payload"] == payload("alrt_1")
    assert [d["status"] for d in first["deliveries"]] == ["pending", "pending"]


def test_alerts_before_any_webhook_have_no_deliveries(store: Store) -> None:
    record(store, "alrt_1")
    store.add_webhook("https://example.com/a")
    assert store.list_alerts()[0]["deliveries"] == []
    assert store.claim_deliveries(NOW, 10, 30) == []


def test_replicas_racing_on_the_same_threshold_record_it_once(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    a.add_webhook("https://example.com/a")
    a.add_webhook("https://example.com/b")
    racers = 16
    start = threading.Barrier(racers)

    def race(i: int) -> list[bool]:
        s = (a, b)[i % 2]
        start.wait()
        # Every racer reports every threshold, each with its own alert id.
        return [record(s, f"alrt_{threshold}_{i:02d}", threshold) for threshold in (50, 80, 100)]

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(race, range(racers)))
    for column in range(3):
        assert sum(row[column] for row in outcomes) == 1
    alerts = b.list_alerts()
    assert sorted(x["threshold"] for x in alerts) == [50, 80, 100]
    assert all(len(x["deliveries"]) == 2 for x in alerts)
    assert len(a.claim_deliveries(NOW, 100, 30)) == 6


# --- claims ------------------------------------------------------------------------------------
def test_claims_are_exclusive_between_replicas(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    a.add_webhook("https://example.com/a")
    a.add_webhook("https://example.com/b")
    for n in range(15):
        record(a, f"alrt_{n:02d}", budget=f"budget-{n}")
    start = threading.Barrier(2)

    def drain(s: Store) -> list[tuple[str, str]]:
        start.wait()
        claimed: list[tuple[str, str]] = []
        while batch := s.claim_deliveries(NOW, 4, 30):
            claimed += [(d.alert_id, d.webhook_id) for d in batch]
        return claimed

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(drain, (a, b))
    assert not set(first) & set(second)
    assert len(first) + len(second) == len(set(first) | set(second)) == 30


def test_a_claim_holds_until_its_lease_runs_out(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    hook = a.add_webhook("https://example.com/a", "k", "slack")
    record(a, "alrt_1")
    [claimed] = a.claim_deliveries(NOW, 10, lease_seconds=30)
    assert (claimed.alert_id, claimed.webhook_id, claimed.attempts) == ("alrt_1", hook["id"], 1)
    assert (claimed.url, claimed.secret, claimed.format, claimed.kind) == (
        "https://example.com/a",
        "k",
        "slack",
        THRESHOLD_CROSSED,
    )
    assert claimed.payload == payload("alrt_1")
    assert b.claim_deliveries(NOW + timedelta(seconds=10), 10, 30) == []
    assert a.claim_deliveries(NOW + timedelta(seconds=29), 10, 30) == []
    # The first claimant died: once the lease is over, another replica takes it.
    [again] = b.claim_deliveries(NOW + timedelta(seconds=31), 10, 30)
    assert (again.alert_id, again.attempts) == ("alrt_1", 2)


def test_delivery_outcomes(store: Store) -> None:
    store.add_webhook("https://example.com/a")
    record(store, "alrt_1")
    record(store, "alrt_2", threshold=100)
    first, second = store.claim_deliveries(NOW, 10, 30)

    store.delivery_succeeded(first.alert_id, first.webhook_id, NOW)
    retry_at = NOW + timedelta(seconds=2)
    store.delivery_failed(second.alert_id, second.webhook_id, NOW, "HTTP 500: boom", retry_at)
    # Delivered is final; a failure waits for its retry time, whatever the lease says.
    assert store.claim_deliveries(NOW + timedelta(seconds=1), 10, 30) == []
    [retry] = store.claim_deliveries(retry_at, 10, 30)
    assert (retry.alert_id, retry.attempts) == (second.alert_id, 2)

    store.delivery_failed(retry.alert_id, retry.webhook_id, retry_at, "HTTP 502: gone", None)
    assert store.claim_deliveries(NOW + timedelta(days=1), 10, 30) == []
    # A late failure report (a lease that lapsed while another replica delivered) changes nothing.
    store.delivery_failed(first.alert_id, first.webhook_id, NOW, "late", NOW)

    by_id = {a["id"]: a["deliveries"][0] for a in store.list_alerts()}
    assert by_id["alrt_1"]["status"] == "delivered" and by_id["alrt_1"]["last_error"] is None
    assert by_id["alrt_1"]["delivered_at"] == "2026-11-10T12:00:00.000000Z"
    assert by_id["alrt_2"] == {
        "webhook_id": retry.webhook_id,
        "status": "failed",
        "attempts": 2,
        "next_attempt_at": None,
        "last_error": "HTTP 502: gone",
        "delivered_at": None,
    }


def test_list_alerts_limit(store: Store) -> None:
    for n in range(5):
        record(store, f"alrt_{n}", budget=f"b{n}")
    assert [a["id"] for a in store.list_alerts(2)] == ["alrt_4", "alrt_3"]

"""The dispatcher against a real webhook receiver on loopback and a real SQLite file."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from spendgate.alerts.dispatcher import AlertDispatcher
from spendgate.alerts.rules import THRESHOLD_CROSSED, new_alert_id, threshold_payload
from spendgate.budgets.windows import window_for
from tests.test_alerts_support import Receiver, Store, budget, running_receiver, until, verified

FAST = {"poll_interval": 0.02, "backoff_base": 0.05, "lease_seconds": 5, "timeout": 2}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "alerts.db")
    yield s
    s.close()


def record(store: Store, threshold: int = 80, name: str = "eng-monthly", spent: str = "80.5") -> dict[str, Any]:
    now = datetime.now(UTC)
    b = budget(name)
    window = window_for("month", "UTC", now)
    payload = threshold_payload(b, window, threshold, Decimal(spent), at=now, alert_id=new_alert_id(now))
    assert store.record_alert(THRESHOLD_CROSSED, b.name, window.key, threshold, payload, now=now)
    return payload


def statuses(store: Store) -> list[str]:
    return [d["status"] for a in store.list_alerts(1000) for d in a["deliveries"]]


async def test_json_webhook_gets_the_signed_alert(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    store.add_webhook(f"{url}/hooks/json", "whsec-1", "json")
    sent = record(store)
    dispatcher = AlertDispatcher(store, **FAST)
    dispatcher.start()
    try:
        await until(lambda: statuses(store) == ["delivered"])
    finally:
        await dispatcher.aclose()
    [got] = rx.requests
    assert got.path == "/hooks/json"
    assert got.json() == sent
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "spendgate"
    assert got.headers["x-spendgate-event"] == "budget.threshold_crossed"
    assert got.headers["x-spendgate-alert-id"] == sent["id"]
    assert verified(got.body, got.headers["x-spendgate-signature"], "whsec-1")
    assert not verified(got.body, got.headers["x-spendgate-signature"], "whsec-2")


async def test_slack_webhook_gets_a_message(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    store.add_webhook(f"{url}/services/T/B/X", None, "slack")
    record(store, 50, spent="51")
    dispatcher = AlertDispatcher(store, **FAST)
    dispatcher.start()
    await until(lambda: len(rx.requests) == 1)
    await dispatcher.aclose()
    [got] = rx.requests
    message = got.json()
    assert set(message) == {"text", "blocks"}
    assert message["text"].startswith("Budget eng-monthly (team:eng) crossed 50%: $51 spent of $100")
    assert "x-spendgate-signature" not in got.headers  # no secret, no signature


async def test_a_failed_delivery_is_retried_with_backoff(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    rx.fail_first = 2
    store.add_webhook(f"{url}/hook", "k")
    sent = record(store)
    dispatcher = AlertDispatcher(store, **FAST)
    dispatcher.start()
    try:
        await until(lambda: statuses(store) == ["delivered"])
    finally:
        await dispatcher.aclose()
    assert [r.status for r in rx.requests] == [500, 500, 200]
    # The same alert (id, body, signature) each time, so a receiver can drop duplicates.
    assert {r.json()["id"] for r in rx.requests} == {sent["id"]}
    assert len({r.body for r in rx.requests}) == 1
    [delivery] = store.list_alerts()[0]["deliveries"]
    assert delivery["attempts"] == 3 and delivery["last_error"] is None


async def test_a_delivery_gives_up_after_max_attempts(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    rx.fail_first, rx.fail_status = 100, 503
    store.add_webhook(f"{url}/hook")
    record(store)
    dispatcher = AlertDispatcher(store, max_attempts=3, **FAST)
    dispatcher.start()
    try:
        await until(lambda: statuses(store) == ["failed"])
    finally:
        await dispatcher.aclose()
    assert len(rx.requests) == 3
    [delivery] = store.list_alerts()[0]["deliveries"]
    # The status only: what a receiver answers is never stored (nor shown by `alerts list`).
    assert delivery["attempts"] == 3 and delivery["last_error"] == "HTTP 503"


async def test_an_unreachable_receiver_is_retried(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    with running_receiver() as (_, gone_url):
        pass  # stopped: nothing listens there any more
    store.add_webhook(f"{gone_url}/hook")
    store.add_webhook(f"{url}/hook")
    record(store)
    dispatcher = AlertDispatcher(store, max_attempts=2, **FAST)
    dispatcher.start()
    try:
        await until(lambda: sorted(statuses(store)) == ["delivered", "failed"])
    finally:
        await dispatcher.aclose()
    failed = next(d for d in store.list_alerts()[0]["deliveries"] if d["status"] == "failed")
    assert failed["attempts"] == 2 and "Connect" in failed["last_error"]
    assert len(rx.requests) == 1


async def test_two_dispatchers_send_each_alert_once(
    receiver: tuple[Receiver, str], store: Store, tmp_path: Path
) -> None:
    rx, url = receiver
    store.add_webhook(f"{url}/a", "k")
    store.add_webhook(f"{url}/b", fmt="slack")
    other = Store(tmp_path / "alerts.db")  # a second replica on the same database
    async with aiohttp.ClientSession() as session:
        replicas = [AlertDispatcher(s, session, batch_size=3, **FAST) for s in (store, other)]
        for dispatcher in replicas:
            dispatcher.start()
        sent = [record(store, t, name=f"budget-{n}") for n in range(10) for t in (50, 80)]
        for dispatcher in replicas:
            dispatcher.wake()
        try:
            await until(lambda: statuses(store).count("delivered") == 40)
        finally:
            for dispatcher in replicas:
                await dispatcher.aclose()
        assert not session.closed  # a session passed in is the caller's to close
    other.close()
    ids = {p["id"] for p in sent}
    json_ids = Counter(r.json()["id"] for r in rx.requests if r.path == "/a")
    slack_ids = Counter(r.headers["x-spendgate-alert-id"] for r in rx.requests if r.path == "/b")
    assert set(json_ids) == set(slack_ids) == ids
    assert set(json_ids.values()) == set(slack_ids.values()) == {1}


async def test_a_hanging_receiver_does_not_hold_up_the_others(store: Store) -> None:
    """One receiver hangs (until the test lets it answer); the other gets the first alert and
    then the next ones while the first is still hanging, in order, not after it gave up."""
    with running_receiver() as (slow, slow_url), running_receiver() as (fast, fast_url):
        slow.gate.clear()
        store.add_webhook(f"{slow_url}/slow")
        store.add_webhook(f"{fast_url}/fast")
        # A send timeout far beyond the test's waits: the slow send cannot end by giving up.
        dispatcher = AlertDispatcher(store, **{**FAST, "timeout": 60, "lease_seconds": 61})
        dispatcher.start()
        try:
            first = record(store, 50)
            await until(lambda: len(slow.requests) == 1 and len(fast.requests) == 1)
            later = [record(store, pct) for pct in (80, 100)]
            dispatcher.wake()
            await until(lambda: len(fast.requests) == 3)
            assert slow.answered == 0  # still hanging while the others were delivered
            assert [r.json()["id"] for r in fast.requests] == [first["id"], *(p["id"] for p in later)]
            slow.gate.set()
            await until(lambda: statuses(store).count("delivered") == 6)
        finally:
            slow.gate.set()
            await dispatcher.aclose()
    assert sorted(r.json()["id"] for r in slow.requests) == sorted([first["id"], *(p["id"] for p in later)])


async def test_closing_sends_what_is_due(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    store.add_webhook(f"{url}/hook")
    dispatcher = AlertDispatcher(store, **{**FAST, "poll_interval": 60})
    dispatcher.start()
    record(store)  # no wake: only the final pass on close can send it
    await dispatcher.aclose()
    assert statuses(store) == ["delivered"] and len(rx.requests) == 1


async def test_a_hung_receiver_cannot_hold_shutdown(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    rx.delay = 3
    store.add_webhook(f"{url}/hook")
    record(store)
    dispatcher = AlertDispatcher(store, close_timeout=0.2, **FAST)
    dispatcher.start()
    await until(lambda: len(rx.requests) == 1)
    started = time.monotonic()
    await dispatcher.aclose()
    assert time.monotonic() - started < 1
    # Cut short, it stays leased to the closed dispatcher, then anyone may send it again.
    assert statuses(store) == ["pending"]
    assert store.claim_deliveries(datetime.now(UTC), 10, 5) == []
    [again] = store.claim_deliveries(datetime.now(UTC) + timedelta(seconds=6), 10, 5)
    assert again.attempts == 2


async def test_send_test(receiver: tuple[Receiver, str], store: Store) -> None:
    rx, url = receiver
    hook = store.add_webhook(f"{url}/hook", "whsec-t")
    dispatcher = AlertDispatcher(store, **FAST)
    try:
        status = await dispatcher.send_test(store.webhook(hook["id"]))
    finally:
        await dispatcher.aclose()
    assert status == 200
    [got] = rx.requests
    assert got.json()["event"] == "webhook.test" and got.json()["webhook"] == hook["id"]
    assert got.headers["x-spendgate-event"] == "webhook.test"
    assert verified(got.body, got.headers["x-spendgate-signature"], "whsec-t")
    assert store.list_alerts() == []  # a test is sent, not recorded


def test_the_lease_must_outlast_a_send() -> None:
    with pytest.raises(ValueError, match="lease"):
        AlertDispatcher(None, lease_seconds=5, timeout=10)  # type: ignore[arg-type]

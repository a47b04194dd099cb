"""Anomalies wired end to end: 45 days of synthetic history written through the store,
serve's live detector on two replicas sharing the ledger (clock injected), a runaway loop
flagged within five minutes, the scope suspended (the SDK gets 403 scope_suspended), the
``spend.anomaly`` webhook sent once, and no anomaly on the same history without the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from spendgate.anomalies import synthetic as syn
from spendgate.anomalies.baseline import build_baseline
from spendgate.anomalies.params import AnomalyParams
from spendgate.budgets.model import Scope
from spendgate.cli.main import main
from spendgate.ledger.events import UsageEvent
from spendgate.watch.history import scan_history
from tests.conftest import Gateway
from tests.test_alerts_support import Clock, running_receiver

START = datetime(2026, 10, 3, tzinfo=UTC)  # a Saturday: day 45 is a Tuesday
NOW0 = START + timedelta(days=45, hours=14)  # Tuesday 14:00, the loop starts
SHAPE = syn.ScopeShape(peak_requests_per_hour=40, request_median_usd=0.09)
SCOPE = "key:support-bot"


def _events(requests: Sequence[syn.SyntheticRequest], prefix: str) -> list[UsageEvent]:
    return [
        UsageEvent(
            id=f"{prefix}-{n}",
            ts=r.at,
            provider="openai",
            model=r.model,
            endpoint="/v1/chat/completions",
            stream=False,
            status="ok",
            http_status=200,
            project="support",
            team="cx",
            key=r.key,
            feature=r.feature,
            customer=r.customer or None,
            trace_id=r.trace or None,
            cost_usd=r.cost,
        )
        for n, r in enumerate(requests)
    ]


def _append(store: Any, events: Sequence[UsageEvent]) -> None:
    for at in range(0, len(events), 5000):
        store.append_events(events[at : at + 5000])


def _set_up(make_gateway: Callable[..., Gateway], clock: Clock) -> tuple[Gateway, Gateway, list[syn.SyntheticRequest]]:
    first = make_gateway(clock=clock, anomaly_interval=0)
    second = make_gateway(db=first.db_url, clock=clock, anomaly_interval=0)
    first.team("cx")
    first.project("support", "cx")
    requests = syn.synthetic_requests(7, START, 46, SHAPE)
    _append(first.store, _events([r for r in requests if r.at < NOW0], "hist"))
    return first, second, requests


def _check(gateway: Gateway) -> list[tuple[str, bool]]:
    assert gateway.app.loop is not None
    return asyncio.run_coroutine_threadsafe(gateway.app.anomalies.check(), gateway.app.loop).result(60)


def test_a_runaway_loop_is_flagged_suspended_and_sent_once(make_gateway: Callable[..., Gateway]) -> None:
    clock = Clock(NOW0)
    first, second, requests = _set_up(make_gateway, clock)
    secret = first.key("support-bot", project="support")
    web = first.key("web", project="support")
    first.store.create_anomaly_rule(Scope.parse(SCOPE), True)
    normal_now = [r for r in requests if r.at >= NOW0]
    # 10x the key's normal rate at this weekday and hour, as its baseline (from the rollups) says.
    hourly = first.store.hourly_costs(Scope.parse(SCOPE), START.date(), NOW0.date())
    expected_hour = build_baseline(hourly, NOW0, AnomalyParams()).for_hour(NOW0).expected
    assert expected_hour > 1
    loop = syn.runaway_loop(1, NOW0, 60, expected_hour * 10, key="support-bot")
    with running_receiver() as (receiver, url):
        first.store.add_webhook(url)
        flagged_at = None
        for minute in range(1, 11):
            clock.now = NOW0 + timedelta(minutes=minute)
            window = [r for r in normal_now + loop if clock.now - timedelta(minutes=1) <= r.at < clock.now]
            _append(first.store, _events(window, f"m{minute}"))
            found = _check(first) + _check(second)
            if found and flagged_at is None:
                flagged_at = minute
            if flagged_at is not None and minute >= flagged_at + 3:
                break
        assert flagged_at is not None and flagged_at <= 5, flagged_at

        anomalies = first.store.list_anomalies()
        # The key's anomaly; and the loop's trace, by the runaway-trace rule (no rule suspends it).
        assert sorted(a["scope"] for a in anomalies) == [SCOPE, "trace:trace-runaway"]
        [anomaly] = [a for a in anomalies if a["scope"] == SCOPE]
        assert Decimal(anomaly["cost_usd"]) > 10 * Decimal(anomaly["expected_usd"])
        assert anomaly["drivers"][0]["value"] in ("trace-runaway", "support-bot")
        assert first.store.list_suspensions()[0]["scope"] == SCOPE

        # The suspension holds on the other replica: the next SDK request is refused.
        second.wait_for_directory()
        with pytest.raises(openai.PermissionDeniedError) as refused:
            second.openai(secret).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.code == "scope_suspended"
        assert anomaly["id"] in refused.value.message
        # Other keys still pass.
        second.openai(web).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

        deadline = time.monotonic() + 10
        while len(receiver.delivered()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a second send would have happened by now
        bodies = {body["anomaly"]["scope"]: body for body in (sent.json() for sent in receiver.requests)}
        assert len(receiver.requests) == len(bodies) == 2  # each anomaly sent once
        body = bodies[SCOPE]
        assert body["event"] == "spend.anomaly" and body["anomaly"]["id"] == anomaly["id"]
        assert body["suspended"] is True and bodies["trace:trace-runaway"]["suspended"] is False

    # Resumed: the key passes again.
    result = CliRunner().invoke(main, ["suspensions", "resume", SCOPE, "--db", first.db_url])
    assert result.exit_code == 0, result.output
    second.wait_for_directory()
    second.openai(secret).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_no_anomaly_on_the_same_history_without_the_loop(make_gateway: Callable[..., Gateway]) -> None:
    clock = Clock(NOW0)
    first, _, _ = _set_up(make_gateway, clock)
    first.store.create_anomaly_rule(Scope.parse(SCOPE), True)
    # The detector over the whole history (rollups), every watched scope.
    found = scan_history(first.store, date(2026, 10, 10), NOW0.date(), NOW0, AnomalyParams())
    assert found == []
    # serve's live check over the last day, every five minutes of injected time.
    for step in range(1, 24 * 12 + 1):
        clock.now = NOW0 - timedelta(days=1) + step * timedelta(minutes=5)
        assert _check(first) == [], clock.now
    assert first.store.list_anomalies() == []
    assert first.store.list_suspensions() == []

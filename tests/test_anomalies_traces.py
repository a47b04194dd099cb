"""Runaway traces and feature scopes, end to end on both backends: the 45-day synthetic
history of ``test_anomalies_live``, an agent run looping through the openai SDK under one
trace id (clock injected), flagged by serve's live check within minutes, suspended by a
``trace:*`` rule on every replica (403 scope_suspended naming the anomaly) while the same
key's other traces pass, the suspension lapsing after ``trace_suspension_hours``; and a
spike of one feature flagged (and suspended by a ``feature:NAME`` rule)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from click.testing import CliRunner

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies import synthetic as syn
from spendgate.anomalies.baseline import build_baseline
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.record import Anomaly
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, ANY_TRACE, Scope
from spendgate.cli.main import main
from tests.conftest import Gateway
from tests.test_alerts_support import Clock
from tests.test_anomalies_live import NOW0, START, _append, _check, _events, _set_up

RUN = "agent-run-42"
# About $0.10 a call on gpt-4o; twelve a minute, as an agent stuck in a tool loop sends them.
LOOP_PROMPT = "[[sim input=20000 output=5000]] call the tool again"
HI = [{"role": "user", "content": "hi"}]


def _cli(gateway: Gateway, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    return result.output


def _loop_call(client: openai.OpenAI, trace: str) -> None:
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": LOOP_PROMPT}],
        extra_headers={"x-spendgate-trace-id": trace, "x-spendgate-feature": "triage"},
    )


def test_a_runaway_trace_is_flagged_and_suspended_while_other_traces_pass(make_gateway: Callable[..., Gateway]) -> None:
    clock = Clock(NOW0)
    first, second, requests = _set_up(make_gateway, clock)
    secret = first.key("support-bot", project="support")
    _cli(first, "anomalies", "rules", "create", "--scope", "trace:*", "--suspend")
    first.wait_for_directory()
    client = first.openai(secret)
    normal_now = [r for r in requests if r.at >= NOW0]
    flagged_at = None
    for minute in range(1, 8):
        for call in range(12):
            clock.now = NOW0 + timedelta(minutes=minute - 1, seconds=5 * call)
            _loop_call(client, RUN)
        clock.now = NOW0 + timedelta(minutes=minute)
        window = [r for r in normal_now if clock.now - timedelta(minutes=1) <= r.at < clock.now]
        _append(first.store, _events(window, f"m{minute}"))
        _check(first)
        _check(second)
        # The key's own anomaly may come first (no rule suspends it): wait for the run's.
        if any(a["scope"] == f"trace:{RUN}" for a in first.store.list_anomalies()):
            flagged_at = minute
            break
    assert flagged_at is not None and flagged_at <= 5, flagged_at
    # Checked again with nothing new: nothing is recorded again (nor grown).
    assert _check(first) == [] and _check(second) == []

    [anomaly] = [a for a in first.store.list_anomalies() if a["scope"].startswith("trace:")]
    assert anomaly["scope"] == f"trace:{RUN}"
    assert Decimal(anomaly["cost_usd"]) > Decimal(anomaly["expected_usd"]) > 0
    drivers = {(d["dimension"], d["value"]) for d in anomaly["drivers"]}
    assert drivers == {("feature", "triage"), ("key", "support-bot"), ("model", "gpt-4o")}
    [suspension] = first.store.list_suspensions()
    assert suspension["scope"] == f"trace:{RUN}" and suspension["anomaly_id"] == anomaly["id"]
    assert suspension["until"].startswith((clock.now + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M"))

    # On the other replica: the run's next call is refused, naming the anomaly …
    second.wait_for_directory()
    other = second.openai(secret)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _loop_call(other, RUN)
    assert refused.value.code == "scope_suspended"
    assert anomaly["id"] in refused.value.message and RUN in refused.value.message
    # … while the same key's other runs, and its calls without a trace, pass.
    _loop_call(other, "agent-run-43")
    other.chat.completions.create(model="gpt-4o-mini", messages=HI)
    # The refused call cost nothing: the run's anomaly does not grow, and no other is recorded.
    assert not any(new for _, new in _check(first))
    [again] = [a for a in first.store.list_anomalies() if a["scope"].startswith("trace:")]
    assert again["cost_usd"] == anomaly["cost_usd"]

    # A trace suspension lapses after trace_suspension_hours (24): the live check deletes it,
    # every replica reloads without it.
    clock.now = clock.now + timedelta(hours=24, minutes=1)
    _check(first)
    assert first.store.list_suspensions() == []
    second.wait_for_directory()
    other.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={"x-spendgate-trace-id": RUN})


def test_a_lapsed_trace_suspension_refuses_nothing_before_it_is_deleted(make_gateway: Callable[..., Gateway]) -> None:
    clock = Clock(NOW0)
    gateway = make_gateway(clock=clock, anomaly_interval=0)
    secret = gateway.key("bot")
    gateway.store.create_anomaly_rule(Scope.parse(ANY_TRACE, ANOMALY_SCOPE_KINDS), True)
    anomaly = Anomaly(f"trace:{RUN}", NOW0, NOW0 + timedelta(minutes=3), Decimal(5), Decimal("0.5"), Decimal(10))
    _, new, suspended = gateway.store.record_anomaly(
        anomaly,
        merge_gap=timedelta(minutes=30),
        source="live",
        now=anomaly.end,
        alert_id=new_alert_id(NOW0),
        trace_suspension=timedelta(hours=2),
    )
    assert new and suspended
    [listed] = json.loads(_cli(gateway, "suspensions", "list", "--json"))
    assert listed["scope"] == f"trace:{RUN}" and listed["until"].startswith("2026-11-17T16:03:00")
    gateway.wait_for_directory()
    client = gateway.openai(secret)
    traced = {"x-spendgate-trace-id": RUN}
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers=traced)
    # Two hours on, by the gateway's clock: it passes though the row is still there.
    clock.now = anomaly.end + timedelta(hours=2)
    assert [s["scope"] for s in gateway.store.list_suspensions()] == [f"trace:{RUN}"]
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers=traced)


@pytest.mark.parametrize(("scope", "other"), [("feature:summarize", "chat"), ("customer:globex", "acme")])
def test_a_feature_or_customer_spike_is_flagged_and_suspended_by_its_rule(
    make_gateway: Callable[..., Gateway], scope: str, other: str
) -> None:
    clock = Clock(NOW0)
    first, _, requests = _set_up(make_gateway, clock)
    secret = first.key("web", project="support")
    kind, name = scope.split(":")
    first.store.create_anomaly_rule(Scope.parse(scope), True)
    hourly = first.store.hourly_costs(Scope.parse(scope), START.date(), NOW0.date())
    expected_hour = build_baseline(hourly, NOW0, AnomalyParams()).for_hour(NOW0).expected
    # Twenty times the scope's rate, spread over many short runs (no one trace stands out):
    # a feature's or customer's floor is twice what an unusual run costs (AnomalyParams.for_runs).
    spike = [
        syn.SyntheticRequest(
            r.at,
            r.cost,
            "batch",
            r.model,
            name if kind == "feature" else "summarize",
            f"doc-{n // 3}",
            name if kind == "customer" else "",
        )
        for n, r in enumerate(syn.runaway_loop(3, NOW0, 60, expected_hour * 20))
    ]
    normal_now = [r for r in requests if r.at >= NOW0]
    flagged: list[str] = []
    for minute in range(1, 31):
        clock.now = NOW0 + timedelta(minutes=minute)
        window = [r for r in normal_now + spike if clock.now - timedelta(minutes=1) <= r.at < clock.now]
        _append(first.store, _events(window, f"m{minute}"))
        if _check(first):
            flagged = [a["scope"] for a in first.store.list_anomalies()]
            if scope in flagged:
                break
    assert scope in flagged and minute <= 15, (flagged, minute)
    assert not [found for found in flagged if found.startswith("trace:")]
    assert [s["scope"] for s in first.store.list_suspensions()] == [scope]
    first.wait_for_directory()
    client = first.openai(secret)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={f"x-spendgate-{kind}": name})
    assert refused.value.code == "scope_suspended"
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={f"x-spendgate-{kind}": other})

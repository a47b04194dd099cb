"""An upstream reporting absurd usage (10^19 or 10^15 tokens, negative counts): the gateway
bounds it, flags the event, and nothing else suffers — later requests are recorded, budgets
stay within their limits (in-process and in Redis), shutdown completes, a restart replays
nothing. Through the official SDKs, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from spendgate.budgets.enforcer import counter_key
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.windows import window_for
from spendgate.ledger.spool.spool import records
from spendgate.usage.bounds import MAX_EVENT_COST_USD
from tests.conftest import Gateway, Simulator
from tests.replicas import ReplicaSet, replica_env

ABSURD = ("10000000000000000000", "1000000000000000")  # 10^19 (past 64-bit columns), 10^15


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _spooled_extra(gateway: Gateway, event_id: str) -> dict:
    """What the spool kept of an event beside the ledger's columns."""
    assert gateway.app.writer.spool is not None
    for record in records(gateway.app.writer.spool.dir):
        if record.kind == "event" and record.id == event_id:
            return record.fields.get("extra") or {}
    raise AssertionError(f"event {event_id} is not in the spool")


@pytest.mark.parametrize("absurd", ABSURD)
def test_absurd_usage_is_estimated_flagged_and_blocks_no_later_event(gateway: Gateway, absurd: str) -> None:
    key = gateway.key("k")
    client = gateway.openai(key)
    answer = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=_user(f"[[sim input={absurd} output=5]] what does this cost?")
    )
    assert answer.parse().usage.prompt_tokens == int(absurd)  # the client gets the answer untouched
    for i in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=_user(f"[[sim input={10 + i} output=2]]"))
    gateway.anthropic(key).messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=_user("[[sim input=-5 cached=7 output=3]]")
    )
    events = gateway.events()
    assert len(events) == 5
    first, *later, negative = events
    # Nothing the provider reported is believed: priced at the gateway's estimate, flagged.
    assert (first["status"], first["estimated"]) == ("ok", True)
    assert 0 < first["input_tokens"] < 100 and first["output_tokens"] < 1000
    assert Decimal(first["cost_usd"]) < Decimal("0.01")
    assert answer.headers["x-spendgate-cost-usd"] == first["cost_usd"]
    reasons = _spooled_extra(gateway, first["id"])["anomalies"]
    assert {"field": "prompt_tokens", "reason": "out_of_range", "reported": absurd} in reasons
    assert [(e["input_tokens"], e["output_tokens"], e["estimated"]) for e in later] == [
        (10, 2, False),
        (11, 2, False),
        (12, 2, False),
    ]
    # A negative count counts zero, and is flagged now (it was clamped silently).
    assert (negative["input_tokens"], negative["cached_input_tokens"], negative["output_tokens"]) == (7, 7, 3)
    assert negative["estimated"] is True
    assert _spooled_extra(gateway, negative["id"])["anomalies"] == [
        {"field": "input_tokens", "reason": "negative", "reported": "-5"}
    ]


@pytest.mark.parametrize("absurd", ABSURD)
def test_absurd_usage_in_streams_is_estimated_too(gateway: Gateway, absurd: str) -> None:
    key = gateway.key("k")
    for _ in gateway.openai(key).chat.completions.create(
        model="gpt-4o", messages=_user(f"[[sim output={absurd}]]"), stream=True
    ):
        pass
    with gateway.anthropic(key).messages.stream(
        model="claude-haiku-4-5", max_tokens=10, messages=_user(f"[[sim input={absurd} output=4]]")
    ) as stream:
        stream.until_done()
    events = gateway.events()
    assert [(e["status"], e["estimated"]) for e in events] == [("ok", True), ("ok", True)]
    assert all(Decimal(e["cost_usd"]) < Decimal("0.01") for e in events)
    assert events[1]["input_tokens"] < 100  # message_start's absurd input side is not taken either


def _budgeted(gateway: Gateway, limit: str) -> str:
    gateway.team("payments")
    gateway.project("checkout", team="payments")
    key = gateway.key("checkout-key", project="checkout")
    gateway.store.create_budget(Budget(name="payments", scope=Scope.parse("team:payments"), limit_usd=Decimal(limit)))
    gateway.wait_for_directory()
    return key


@pytest.mark.parametrize("counters", ["in-process", "redis"])
@pytest.mark.parametrize("absurd", ABSURD)
def test_an_absurd_answer_never_puts_a_budget_past_its_limit(
    make_gateway, request: pytest.FixtureRequest, counters: str, absurd: str
) -> None:
    settings = {}
    if counters == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
        settings["redis_url"] = url
    gateway = make_gateway(**settings)
    key = _budgeted(gateway, "1")
    client = gateway.openai(key, timeout=20)
    client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=50, messages=_user(f"[[sim input={absurd} output=5]] hi")
    )
    # The next requests under the budget are admitted (nothing was left reserved) and recorded.
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=50, messages=_user("[[sim input=10 output=2]]"))
    events = gateway.events()
    assert len(events) == 4
    window = window_for("month", "UTC", datetime.now(UTC))
    spent = gateway.store.spend(Scope.parse("team:payments"), window.start, window.end)
    assert 0 < spent < Decimal("0.01") <= Decimal(1)
    budget = gateway.app.enforcer.rules.budgets[0]
    states = asyncio.run_coroutine_threadsafe(
        gateway.app.enforcer.counters.states([counter_key(budget, window)]), gateway.app.loop
    ).result(5)
    [state] = states.values()
    assert (state.spent, state.reserved) == (spent, 0)


@pytest.mark.parametrize("counters", ["in-process", "redis"])
def test_a_reservation_is_never_above_what_an_event_can_cost(
    make_gateway, request: pytest.FixtureRequest, counters: str
) -> None:
    """A client's max_tokens of 10^18 would reserve more than the counters hold: it reserves the
    per-event ceiling instead, and is refused by a budget that cannot afford that."""
    settings = {}
    if counters == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
        settings["redis_url"] = url
    gateway = make_gateway(**settings)
    key = _budgeted(gateway, "1000")
    client = gateway.openai(key)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o", max_tokens=10**18, messages=_user("[[sim input=10 output=2]]"))
    assert refused.value.status_code == 402  # not a 503: the budget was checked
    assert Decimal(refused.value.body["budget"]["requested_usd"]) == MAX_EVENT_COST_USD


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_completes_and_a_restart_replays_nothing_after_an_absurd_answer(
    tmp_path: Path, simulator: Simulator, request: pytest.FixtureRequest, backend: str
) -> None:
    env = replica_env(tmp_path, simulator.url)
    if backend == "postgresql":
        env["SPENDGATE_DB"] = request.getfixturevalue("postgres_db")()
    replicas = ReplicaSet(tmp_path, env)
    replicas.cli("teams", "create", "ops")
    replicas.cli("projects", "create", "bot", "--team", "ops")
    key = json.loads(replicas.cli("keys", "create", "--name", "bot", "--project", "bot", "--json"))["key"]
    replicas.cli("budgets", "create", "--scope", "team:ops", "--limit", "5", "--name", "ops")
    try:
        first = replicas.start()
        client = openai.OpenAI(base_url=f"{first.url}/v1", api_key=key, max_retries=0, timeout=20)
        client.chat.completions.create(model="gpt-4o-mini", messages=_user(f"[[sim input={ABSURD[0]} output=5]]"))
        for i in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=_user(f"[[sim input={i + 1} output=1]]"))
        client.close()
        first.stop()
        assert first.process.returncode is not None and first.process.returncode in (0, -15), first.output()
        assert "stay in the spool" not in first.output()
        report = json.loads(replicas.cli("report", "--by", "team", "--format", "json"))
        assert report["total_requests"] == 6
        assert not list((tmp_path / "spool").rglob("*.jsonl"))  # nothing left to replay
        second = replicas.start()
        assert httpx.get(f"{second.url}/healthz").json() == {"status": "ok", "pending_events": 0, "dead_letters": 0}
        second.stop()
        assert json.loads(replicas.cli("report", "--by", "team", "--format", "json"))["total_requests"] == 6
    finally:
        replicas.stop_all()

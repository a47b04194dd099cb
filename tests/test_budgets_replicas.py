"""Two gateway processes sharing one ledger and one Redis: budgets, limits and reservations
hold across them, and a killed replica's reservation does not leak."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import redis

from tests.conftest import Simulator
from tests.replicas import ReplicaSet, replica_env
from tests.test_alerts_support import running_receiver

FILLER = "spend " * 500


def _ask(output: int = 200, extra: str = "") -> dict:
    return {
        "model": "gpt-4o-mini",
        "max_tokens": output,
        "messages": [{"role": "user", "content": f"[[sim output={output} {extra}]] {FILLER}"}],
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path, simulator: Simulator, redis_url: str):
    """Replicas sharing one ledger (a SQLite file, or PostgreSQL as in production) and one Redis."""
    # A database of its own on the test Redis, emptied first: replicas start with no counters.
    shared = redis_url.rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(shared)
    client.flushdb()
    client.close()
    env = replica_env(tmp_path, simulator.url, SPENDGATE_REDIS_URL=shared)
    if request.param == "postgresql":
        env["SPENDGATE_DB"] = request.getfixturevalue("postgres_db")()
    replicas = ReplicaSet(tmp_path, env)
    replicas.cli("teams", "create", "payments")
    replicas.cli("projects", "create", "checkout", "--team", "payments")
    replicas.key = json.loads(  # type: ignore[attr-defined]
        replicas.cli("keys", "create", "--name", "checkout-key", "--project", "checkout", "--json")
    )["key"]
    yield replicas
    replicas.stop_all()


def _spent(replicas: ReplicaSet, name: str) -> Decimal:
    budgets = json.loads(replicas.cli("budgets", "list", "--json"))
    return Decimal(next(b for b in budgets if b["name"] == name)["spent_usd"])


async def _burst(urls: list[str], key: str, count: int) -> list[int]:
    clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) for url in urls]

    async def one(i: int) -> int:
        try:
            await clients[i % len(clients)].chat.completions.create(**_ask())
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        for client in clients:
            await client.close()


def test_one_budget_holds_across_two_replicas(cluster: ReplicaSet) -> None:
    key = cluster.key  # type: ignore[attr-defined]
    cluster.cli("budgets", "create", "--scope", "team:payments", "--limit", "0.01", "--name", "payments")
    a, b = cluster.start(), cluster.start()
    client = openai.OpenAI(base_url=f"{a.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**_ask())
    cost = Decimal(raw.headers["x-spendgate-cost-usd"])
    client.close()
    # Spend down to a few requests' worth, alternating replicas, one at a time (concurrent
    # requests would each reserve their worst case, more than they end up costing).
    for i in range(int((Decimal("0.01") - 5 * cost) / cost)):
        assert asyncio.run(_burst([(a, b)[i % 2].url], key, 1)) == [200]
    statuses = asyncio.run(_burst([a.url, b.url], key, 40))
    assert set(statuses) == {200, 402}
    time.sleep(0.3)  # both replicas flush their ledger batches
    spent = _spent(cluster, "payments")
    assert spent <= Decimal("0.01"), f"overspent across replicas: {spent}"
    assert 1 <= statuses.count(200) <= 4


def test_a_killed_replicas_reservation_expires_and_frees_the_budget(cluster: ReplicaSet) -> None:
    key = cluster.key  # type: ignore[attr-defined]
    cluster.env["SPENDGATE_RESERVATION_TTL"] = "2"
    cluster.cli("budgets", "create", "--scope", "project:checkout", "--limit", "0.0004", "--name", "tiny")
    doomed, survivor = cluster.start(), cluster.start()

    async def hang() -> None:
        client = openai.AsyncOpenAI(base_url=f"{doomed.url}/v1", api_key=key, max_retries=0, timeout=30)
        try:
            await client.chat.completions.create(**_ask(extra="delay_ms=20000"))
        finally:
            await client.close()

    async def scenario() -> tuple[int, int]:
        task = asyncio.ensure_future(hang())
        await asyncio.sleep(0.5)  # the doomed replica now holds a reservation for it
        doomed.kill()
        with pytest.raises(openai.APIConnectionError):
            await task
        statuses = await _burst([survivor.url], key, 1)
        await asyncio.sleep(3)  # past the reservation's deadline
        later = await _burst([survivor.url], key, 1)
        return statuses[0], later[0]

    while_held, after_expiry = asyncio.run(scenario())
    assert while_held == 402  # the dead replica's reservation still counted…
    assert after_expiry == 200  # …until it expired: nothing leaks
    budgets = json.loads(cluster.cli("budgets", "list", "--json"))
    assert Decimal(budgets[0]["reserved_usd"]) == 0


def test_rate_limits_hold_across_replicas(cluster: ReplicaSet) -> None:
    keys = []
    for attempt in range(2):
        name = f"limited-{attempt}"
        keys.append(json.loads(cluster.cli("keys", "create", "--name", name, "--json"))["key"])
        cluster.cli("limits", "create", "--scope", f"key:{name}", "--rpm", "5")
    a, b = cluster.start(), cluster.start()
    for key in keys:  # a fresh key if a burst straddled a clock minute (fixed windows)
        minute = int(time.time() // 60)
        statuses = asyncio.run(_burst([a.url, b.url], key, 12))
        if int(time.time() // 60) == minute:
            break
    assert statuses.count(200) == 5 and statuses.count(429) == 7


def _crossed(receiver) -> list[dict]:
    return [r.json() for r in receiver.delivered() if r.json()["event"] == "budget.threshold_crossed"]


def test_each_threshold_fires_once_across_replicas(cluster: ReplicaSet) -> None:
    key = cluster.key  # type: ignore[attr-defined]
    with running_receiver() as (receiver, url):
        cluster.cli("webhooks", "add", f"{url}/hook", "--secret", "whsec-replicas")
        # Soft: every request goes through, so spend sweeps past every threshold on both replicas.
        cluster.cli(
            "budgets", "create", "--scope", "team:payments", "--limit", "0.003", "--alert-at", "25,50,100", "--soft"
        )
        a, b = cluster.start(), cluster.start()
        statuses = asyncio.run(_burst([a.url, b.url], key, 30))
        assert set(statuses) == {200}
        deadline = time.monotonic() + 15
        while len(_crossed(receiver)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # room for a duplicate from the other replica, were there one
    crossed = _crossed(receiver)
    assert sorted(alert["threshold"] for alert in crossed) == [25, 50, 100]
    assert len({alert["id"] for alert in crossed}) == 3

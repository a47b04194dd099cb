"""Item 28 (issue 9), second half: budget counters re-synced against the ledger.

The counter contract first (in-process and Redis alike): a re-sync sets spent to the ledger's
figure plus the settled spend not shipped yet, minus the shipped spend not settled yet, so no
interleaving of settlements, shipping and re-syncs counts anything twice or loses it. Then the
running gateway, on SQLite and PostgreSQL with real Redis: a corrupted counter, a lost
settlement and a restored database heal, and re-syncs racing real SDK traffic change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import redis

from spendgate.budgets.counters import Charge, CounterStore, InProcessCounters
from spendgate.budgets.enforcer import counter_key
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.redis_counters import to_pico
from spendgate.budgets.resync import CounterResync
from spendgate.budgets.windows import Window, window_for
from spendgate.ledger.events import UsageEvent
from tests.conftest import Gateway

D = Decimal
T = TypeVar("T")
C = "b@2026-11"
CHARGE = Charge(C, D(100), True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        store: CounterStore = InProcessCounters()
    else:
        from spendgate.budgets.redis_counters import RedisCounters

        redis_url = request.getfixturevalue("redis_url")
        store = await RedisCounters.connect(redis_url, namespace=f"sgtest-resync-{id(request)}")
    yield store
    if request.param == "redis":
        await store.flush_namespace()  # type: ignore[attr-defined]
    await store.close()


async def spent(counters: CounterStore, counter: str = C) -> Decimal:
    return (await counters.states([counter]))[counter].spent


async def resync(counters: CounterStore, ledger: Decimal, counter: str = C) -> dict | None:
    assert await counters.resync_lock("t", 30)
    return await counters.resync_apply("t", {counter: ledger})


# --- the contract -------------------------------------------------------------------------------
async def test_a_corrupted_counter_is_set_from_the_ledger(counters: CounterStore) -> None:
    await counters.load(C, D(7))  # wrong: the ledger says 2
    assert await resync(counters, D(2)) == {C: (D(7), D(2))}
    assert await spent(counters) == D(2)
    assert await counters.resync_apply("t", {C: D(5)}) is None  # the lock ended with the apply


async def test_settled_but_not_shipped_spend_is_kept(counters: CounterStore) -> None:
    await counters.load(C, D(1))
    await counters.reserve("r1", [CHARGE], D(5), ttl=60)
    await counters.settle("r1", D(2))  # in the writer's queue: the ledger still says 1
    await resync(counters, D(1))
    assert await spent(counters) == D(3)
    await counters.ship_end("w", [("r1", D(2))])  # shipped: the ledger says 3 now
    await resync(counters, D(3))
    assert await spent(counters) == D(3)


async def test_shipped_before_settled_is_not_counted_twice(counters: CounterStore) -> None:
    await counters.load(C, D(1))
    await counters.reserve("r1", [CHARGE], D(5), ttl=60)
    await counters.ship_end("w", [("r1", D(2))])  # the ledger has it; the settlement has not run
    await resync(counters, D(3))
    assert await spent(counters) == D(1)  # the settlement adds it
    [state] = await counters.settle("r1", D(2))
    assert (state.spent, state.reserved) == (D(3), D(0))
    await resync(counters, D(3))
    assert await spent(counters) == D(3)
    await counters.ship_end("w", [("r1", D(2))])  # a replayed batch confirms nothing twice
    await resync(counters, D(3))
    assert await spent(counters) == D(3)


async def test_shipped_but_never_settled_is_counted_from_the_ledger(counters: CounterStore) -> None:
    await counters.load(C, D(1))
    await counters.reserve("r1", [CHARGE], D(5), ttl=60)
    await counters.ship_end("w", [("r1", D(2))])
    await counters.release("r1")  # its process failed to settle: the reservation ends unsettled
    await resync(counters, D(3))
    assert await spent(counters) == D(3)


async def test_a_settlement_during_a_resync_is_counted_once(counters: CounterStore) -> None:
    await counters.load(C, D(0))
    await counters.reserve("r1", [CHARGE], D(5), ttl=60)
    await counters.reserve("r2", [CHARGE], D(5), ttl=60)
    await counters.ship_end("w", [("r2", D(4))])  # shipped, not settled
    assert await counters.resync_lock("t", 30)
    ledger = D(4)  # read now: r2 only
    await counters.settle("r1", D(1))  # between the ledger read and the apply
    await counters.settle("r2", D(4))
    await counters.resync_apply("t", {C: ledger})
    assert await spent(counters) == D(5)
    assert (await counters.states([C]))[C].reserved == D(0)


async def test_writers_and_resyncs_take_turns(counters: CounterStore) -> None:
    assert await counters.ship_begin("writer", lease=30) == 0
    assert await counters.ships_in_progress() == 1
    assert await counters.resync_lock("t1", 30)
    assert not await counters.resync_lock("t2", 30)  # one re-sync at a time, on any replica
    assert await counters.ship_begin("writer-2", lease=30) > 0  # no new batch under the lock
    await counters.ship_end("writer", [])
    assert await counters.ships_in_progress() == 0
    await counters.resync_unlock("t2")  # not its lock: nothing happens
    assert await counters.ship_begin("writer-2", lease=30) > 0
    await counters.resync_unlock("t1")
    assert await counters.ship_begin("writer-2", lease=30) == 0


async def test_a_dead_writers_lease_runs_out() -> None:
    clock = Clock()
    counters = InProcessCounters(clock=clock)
    await counters.ship_begin("dead", lease=60)
    assert await counters.ships_in_progress() == 1
    clock.now += 61
    assert await counters.ships_in_progress() == 0


async def test_a_counter_never_loaded_is_left_to_its_first_use(counters: CounterStore) -> None:
    assert await resync(counters, D(9), counter="never@t") == {}
    assert await counters.missing(["never@t"]) == ["never@t"]


async def test_exact_past_the_precision_of_doubles(counters: CounterStore) -> None:
    big = D("1234567.123456789013")  # 1.2e18 pico-dollars: far past 2^53, within 64 bits
    await counters.load(C, D(0))
    await counters.reserve("r1", [Charge(C, D(10**12), True)], D("0.000000000001"), ttl=60)
    await counters.settle("r1", D("0.000000000001"))
    await resync(counters, big)
    assert await spent(counters) == big + D("0.000000000001")


# --- the scheduler (CounterResync) ---------------------------------------------------------------
async def test_a_resync_round_waits_for_batches_being_written() -> None:
    counters = InProcessCounters()
    await counters.load(C, D(5))
    budget = Budget("b", Scope.parse("org"), D(100))
    now = datetime(2026, 11, 10, tzinfo=UTC)
    key = counter_key(budget, window_for("month", "UTC", now))
    await counters.load(key, D(5))

    async def ledger(scope: Scope, window: Window) -> Decimal:
        return D(2)

    job = CounterResync(lambda: counters, lambda: [budget], ledger, interval=60, clock=lambda: now, idle_wait=0.05)
    await counters.ship_begin("writer", lease=60)
    assert await job.run_once() is None  # a batch is being written: not now
    assert await counters.ship_begin("other", lease=60) == 0  # the lock was given back
    await counters.ship_end("writer", [])
    await counters.ship_end("other", [])
    assert await job.run_once() == {key: (D(5), D(2))}
    assert (job.rounds, job.corrected) == (1, 1)


# --- the running gateway -------------------------------------------------------------------------
FILLER = "spend " * 200


def _ask(output: int = 50) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "max_tokens": output,
        "messages": [{"role": "user", "content": f"[[sim output={output}]] {FILLER}"}],
    }


def on_loop(gateway: Gateway, coro: Coroutine[Any, Any, T]) -> T:
    assert gateway.app.loop is not None
    return asyncio.run_coroutine_threadsafe(coro, gateway.app.loop).result(30)


@pytest.fixture(params=["memory", "redis"])
def counters_at(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The gateway's counters: in-process, or in (a flushed database of) the test Redis."""
    if request.param == "memory":
        yield None
        return
    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


BUDGET = Budget("payments-monthly", Scope.parse("team:payments"), D("1000"))


def _setup(gateway: Gateway) -> str:
    gateway.team("payments")
    gateway.project("checkout", team="payments")
    key = gateway.key("checkout-key", project="checkout")
    gateway.store.create_budget(BUDGET)
    gateway.wait_for_directory()
    return key


def _counter(gateway: Gateway) -> str:
    return counter_key(BUDGET, window_for("month", "UTC", datetime.now(UTC)))


def _ledger(gateway: Gateway) -> Decimal:
    gateway.flush()
    window = window_for("month", "UTC", datetime.now(UTC))
    return gateway.store.spend(BUDGET.scope, window.start, window.end)


def _state(gateway: Gateway) -> tuple[Decimal, Decimal]:
    counter = _counter(gateway)
    state = on_loop(gateway, gateway.app.enforcer.counters.states([counter]))[counter]
    return state.spent, state.reserved


def _corrupt(gateway: Gateway, value: Decimal) -> None:
    counters = gateway.app.enforcer.counters
    counter = _counter(gateway)
    if isinstance(counters, InProcessCounters):

        async def poke() -> None:
            counters._spent[counter] = value

        on_loop(gateway, poke())
    else:
        client = redis.Redis.from_url(gateway.app.settings.redis_url)
        client.hset(counters.counter_key(counter), "s", str(to_pico(value)))  # type: ignore[attr-defined]
        client.close()


def test_a_corrupted_counter_heals_within_one_interval(
    make_gateway: Callable[..., Gateway], counters_at: str | None
) -> None:
    gateway = make_gateway(redis_url=counters_at, counter_resync_interval=0.05)
    client = gateway.openai(_setup(gateway))
    for _ in range(3):
        client.chat.completions.create(**_ask())
    ledger = _ledger(gateway)
    assert ledger > 0 and _state(gateway) == (ledger, 0)
    _corrupt(gateway, D("999"))  # as a restored Redis or a lost settlement would leave it
    healed = False
    for _ in range(1000):  # a bound on a hang, not on speed: one interval is 0.05 s
        if _state(gateway) == (ledger, 0):
            healed = True
            break
        on_loop(gateway, asyncio.sleep(0.01))
    assert healed and gateway.app.resync.corrected >= 1


def test_spend_the_counters_never_saw_is_counted(make_gateway: Callable[..., Gateway], counters_at: str | None) -> None:
    """Events that reached the ledger without a settlement (recovered from a dead process's
    spool, dead letters retried) are counted at the next re-sync."""
    gateway = make_gateway(redis_url=counters_at, counter_resync_interval=0)
    client = gateway.openai(_setup(gateway))
    client.chat.completions.create(**_ask())
    [seen] = gateway.events()
    unseen = UsageEvent(
        **{**{k: seen[k] for k in ("provider", "model", "project", "team")}, "id": "recovered-1"},
        ts=datetime.now(UTC),
        endpoint="/v1/chat/completions",
        stream=False,
        status="incomplete",
        http_status=0,
        cost_usd=D("0.25"),
    )
    gateway.store.append_events([unseen])
    before, _ = _state(gateway)
    applied = on_loop(gateway, gateway.app.resync.run_once())
    assert applied == {_counter(gateway): (before, before + D("0.25"))}
    assert _state(gateway) == (_ledger(gateway), 0)


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()


def test_a_restored_database_heals_the_counters_it_shares(
    make_gateway: Callable[..., Gateway], shared_redis: str
) -> None:
    """The ledger is restored from a backup older than its counters (same identity, less
    spend): the counters come back down to the ledger's figure, and requests pass again.
    (In-process counters die with their process: a restore restarts them from the ledger.)"""
    counters_at = shared_redis
    first = make_gateway(redis_url=counters_at, counter_resync_interval=0)
    client = first.openai(_setup(first))
    for _ in range(3):
        client.chat.completions.create(**_ask())
    assert _state(first)[0] > 0
    # The "backup": a ledger with the same identity and none of that spend.
    restored = make_gateway(redis_url=counters_at, counter_resync_interval=0)
    with restored.store._dialect.transaction() as session:
        session.execute("UPDATE meta SET value = ? WHERE name = 'ledger_id'", (int(first.store.ledger_id(), 16),))
    restored.app.enforcer.gate = on_loop(restored, _reconnect(restored))
    _setup(restored)
    restored.openai(restored.key("restored-key", project="checkout")).chat.completions.create(**_ask())
    assert _state(restored)[0] > _ledger(restored)  # counted with the other ledger's spend
    on_loop(restored, restored.app.resync.run_once())
    assert _state(restored) == (_ledger(restored), 0)


async def _reconnect(gateway: Gateway) -> Any:
    """The gateway's Redis gate again, as a start on the restored database would connect it."""
    from spendgate.budgets.redis_counters import RedisGate, ledger_namespace

    await gateway.app.enforcer.gate.close()
    namespace = ledger_namespace(None, await asyncio.to_thread(gateway.store.ledger_id))
    return await RedisGate.connect(gateway.app.settings.redis_url, namespace=namespace)


def test_resyncs_racing_sdk_traffic_never_count_twice(
    make_gateway: Callable[..., Gateway], counters_at: str | None
) -> None:
    """Re-syncs run back to back while concurrent SDK requests settle and the writer ships
    (every 20 ms): afterwards the counter equals the ledger without one more re-sync."""
    gateway = make_gateway(redis_url=counters_at, counter_resync_interval=0, flush_interval=0.02)
    key = _setup(gateway)
    app = gateway.app
    rounds: list[Any] = []

    async def resync_forever() -> None:
        while True:
            rounds.append(await app.resync.run_once())
            await asyncio.sleep(random.uniform(0, 0.01))

    async def traffic() -> None:
        client = gateway.async_openai(key)
        limit = asyncio.Semaphore(12)

        async def one(i: int) -> None:
            async with limit:
                stream = i % 3 == 0
                if stream:
                    async for _ in await client.chat.completions.create(**_ask(20 + i % 40), stream=True):
                        pass
                else:
                    await client.chat.completions.create(**_ask(20 + i % 40))

        try:
            await asyncio.gather(*(one(i) for i in range(90)))
        finally:
            await client.close()

    assert app.loop is not None
    resyncer = asyncio.run_coroutine_threadsafe(resync_forever(), app.loop)
    try:
        asyncio.run(traffic())
    finally:
        resyncer.cancel()
        with contextlib.suppress(Exception):
            resyncer.result(5)
    ledger = _ledger(gateway)  # flushes: every event shipped and confirmed
    assert sum(1 for r in rounds if r) >= 3, "the re-syncs did not run during the traffic"
    assert _state(gateway) == (ledger, 0)
    assert len(gateway.events()) == 90

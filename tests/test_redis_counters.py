"""What only the Redis counters can show: several replicas (separate clients) sharing budgets,
a dead replica's reservations, exact pico-dollar storage, key lifetimes and lost Redis data.
The behaviour shared with the in-process counters is in test_budget_counters.py."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal

import pytest
import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import ResponseError

from spendgate.budgets.counters import Charge
from spendgate.budgets.redis_counters import (
    RATE_KEY_TTL,
    WINDOW_KEY_TTL,
    RedisCounters,
    RedisRateLimiter,
    from_pico,
    limit_to_pico,
    to_pico,
)

D = Decimal


@pytest.fixture
def namespace(request) -> str:
    return f"sgtest-{os.getpid()}-{request.node.name}"


@pytest.fixture
async def raw(redis_url: str):
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def replicas(redis_url: str, namespace: str):
    """Two gateway replicas: two separate Redis clients on one namespace."""
    a = await RedisCounters.connect(redis_url, namespace=namespace)
    b = await RedisCounters.connect(redis_url, namespace=namespace)
    yield a, b
    await b.flush_namespace()
    await a.close()
    await b.close()


def test_pico_conversion_is_exact_and_rounds_up() -> None:
    assert to_pico(D("0.000000075")) == 75_000
    assert from_pico(75_000) == D("0.000000075")
    assert to_pico(D("1e-13")) == 1  # below a pico-dollar: rounded up, never to zero
    assert to_pico(D("-1e-13")) == 0  # ceiling, also for a negative correction
    assert to_pico(D("0.15")) * 1_000 == to_pico(D("150"))
    # A price of at most 6 decimals per million tokens times a token count is exact.
    assert to_pico(D("0.150000") * 1234 / 1_000_000) == 185_100_000
    assert limit_to_pico(D("1e-13")) == 0  # limits round down: also conservative
    assert str(from_pico(10 * 10**12)) == "10"  # normalized, but never "1E+1"
    assert str(from_pico(0)) == "0"
    assert from_pico("-2500000000000") == D("-2.5")
    with pytest.raises(ValueError):
        to_pico(D("9300000"))  # more than 2^63 - 1 pico-dollars
    with pytest.raises(ValueError):
        to_pico(D("NaN"))
    # Extreme exponents are answered without building huge integers.
    assert to_pico(D("1e-999999999")) == 1
    assert to_pico(D("-1e-999999999")) == 0
    assert to_pico(D("0E-999999999")) == 0
    assert limit_to_pico(D("1e999999999")) > 2**63
    with pytest.raises(ValueError):
        to_pico(D("1e999999999"))


async def test_money_is_stored_as_exact_integers_of_pico_dollars(replicas, raw) -> None:
    a, _ = replicas
    await a.load("p@total", D("0.000000075"))
    assert await raw.hget(a.counter_key("p@total"), "s") == "75000"
    assert (await a.states(["p@total"]))["p@total"].spent == D("0.000000075")
    assert await a.reserve("r", [Charge("p@total", D(1), True)], D("1e-13"), ttl=60) is None
    assert await raw.hget(a.counter_key("p@total"), "r") == "1"
    [state] = await a.settle("r", D("1e-13"))
    assert (state.spent, state.reserved) == (D("0.000000075001"), D(0))
    # Far above 2^53 pico-dollars (~$9,007) the counters stay exact to the pico-dollar.
    big = D("1234567.890123456789")
    await a.load("big@total", big)
    assert await a.reserve("r2", [Charge("big@total", D(2_000_000), True)], D(1), ttl=60) is None
    [state] = await a.settle("r2", D("0.000000000001"))
    assert state.spent == D("1234567.890123456790")
    assert await raw.hget(a.counter_key("big@total"), "s") == "1234567890123456790"
    # Reserved too, past 2^53 (the scripts answer with strings; Python adds exactly).
    huge = D("1234567.000000000001")
    assert await a.reserve("r3", [Charge("big@total", D(3_000_000), False)], huge, ttl=60) is None
    [state] = await a.settle("r3", D(0))
    assert (state.spent, state.reserved) == (D("1234567.890123456790"), D(0))
    assert await a.reserve("r4", [Charge("big@total", D(3_000_000), False)], huge, ttl=60) is None
    assert (await a.states(["big@total"]))["big@total"].reserved == huge
    assert await raw.hget(a.counter_key("big@total"), "r") == "1234567000000000001"


async def test_two_replicas_racing_never_over_reserve(replicas) -> None:
    a, b = replicas
    charge = Charge("shared@2026-11", D("1.00"), True)
    await a.load(charge.counter, D("0.70"))
    await b.load(charge.counter, D("123"))  # the other replica loses the load race
    results = await asyncio.gather(
        *((a if i % 2 else b).reserve(f"r{i}", [charge], D("0.07"), ttl=60) for i in range(40))
    )
    admitted = [i for i, refused in enumerate(results) if refused is None]
    assert len(admitted) == 4  # 0.70 + 4 x 0.07 = 0.98; a fifth would make 1.05
    refusal = next(r for r in results if r is not None)
    assert (refusal.counter, refusal.spent, refusal.reserved) == (charge.counter, D("0.70"), D("0.28"))
    assert (await b.states([charge.counter]))[charge.counter].reserved == D("0.28")
    for i in admitted:  # each replica settles the other's: the reservation lives in Redis
        await (b if i % 2 else a).settle(f"r{i}", D("0.06"))
    state = (await a.states([charge.counter]))[charge.counter]
    assert (state.spent, state.reserved) == (D("0.94"), D(0))


async def test_a_dead_replicas_reservation_is_released_by_the_next_reserve(redis_url, namespace) -> None:
    charge = Charge("d@2026-11", D(10), True)
    dead = await RedisCounters.connect(redis_url, namespace=namespace)
    alive = await RedisCounters.connect(redis_url, namespace=namespace)
    try:
        await dead.load(charge.counter, D(0))
        assert await dead.reserve("orphan", [charge], D(9), ttl=0.3) is None
        await dead.close()  # the replica dies without settling
        assert await alive.reserve("early", [charge], D(2), ttl=60) is not None  # still held
        await asyncio.sleep(0.4)
        assert await alive.reserve("late", [charge], D(2), ttl=60) is None  # purged first, then reserved
        assert alive.expired == 1
        assert (await alive.states([charge.counter]))[charge.counter].reserved == D(2)
        assert await alive.settle("orphan", D(9)) == []  # its late settle is ignored
    finally:
        await alive.flush_namespace()
        await alive.close()


async def test_deadlines_use_the_redis_server_clock(replicas, raw) -> None:
    a, _ = replicas
    await a.load("t@total", D(0))
    await a.reserve("t", [Charge("t@total", D(1), False)], D(0), ttl=30)
    seconds, micros = await raw.time()
    deadline = await raw.zscore(a.due_key, "t")
    assert abs(deadline - ((seconds + 30) * 1_000_000 + micros)) < 2_000_000


async def test_a_retried_reserve_does_not_reserve_twice(replicas) -> None:
    a, b = replicas
    charge = Charge("i@total", D(10), True)
    await a.load(charge.counter, D(0))
    assert await a.reserve("same", [charge], D(3), ttl=60) is None
    assert await b.reserve("same", [charge], D(3), ttl=60) is None  # e.g. retried after a lost reply
    assert (await a.states([charge.counter]))[charge.counter].reserved == D(3)
    await a.release("same")
    assert (await a.states([charge.counter]))[charge.counter].reserved == D(0)


async def test_window_keys_expire_and_total_keys_do_not(replicas, raw) -> None:
    a, _ = replicas
    month, total = Charge("k@2026-11", D(10), True), Charge("k@total", D(10), True)
    for charge in (month, total):
        await a.load(charge.counter, D(1))
    await a.reserve("r1", [month, total], D(1), ttl=60)
    await a.reserve("r2", [month, total], D(1), ttl=60)
    await a.settle("r1", D(1))
    assert WINDOW_KEY_TTL - 60 < await raw.ttl(a.counter_key(month.counter)) <= WINDOW_KEY_TTL
    assert await raw.ttl(a.counter_key(total.counter)) == -1  # exists, without a TTL
    assert await raw.ttl(a.reservation_key("r2")) == -1  # only purging ends a reservation


async def test_every_key_is_under_the_namespace_in_one_cluster_slot(replicas, raw, redis_url, namespace) -> None:
    a, _ = replicas
    limiter = await RedisRateLimiter.connect(redis_url, namespace=namespace)
    try:
        await a.load("s@2026-11-23", D(0))
        await a.load("t@total", D(0))
        await a.reserve("r", [Charge("s@2026-11-23", D(1), True), Charge("t@total", D(1), False)], D(0), 60)
        await limiter.admit([("key:1", 5, 100), ("team:x", None, 100)], 10, now=1_000_000.0)
        keys = [key async for key in raw.scan_iter(match=f"{namespace}:*")]
        assert len(keys) == 6  # counters s and t, reservation, deadlines, 2 rates
        assert all(key.startswith(f"{namespace}:{{sg:{namespace}}}:") for key in keys)
        assert len({key_slot(key.encode()) for key in keys}) == 1
        assert await a.flush_namespace() == 6
        assert [key async for key in raw.scan_iter(match=f"{namespace}:*")] == []
    finally:
        await limiter.close()


async def test_lost_redis_data_reports_the_counters_missing_again(replicas) -> None:
    a, b = replicas
    charge = Charge("l@2026-11", D(10), True)
    await a.load(charge.counter, D(4))
    assert await a.reserve("in-flight", [charge], D(1), ttl=60) is None
    await b.flush_namespace()  # Redis restarted without persistence, or was flushed
    assert await a.missing([charge.counter, "l@total"]) == [charge.counter, "l@total"]
    assert await a.settle("in-flight", D(1)) == []  # the reservation went with the data
    await b.load(charge.counter, D(5))  # rebuilt from the ledger
    assert await a.missing([charge.counter]) == []
    state = (await a.states([charge.counter]))[charge.counter]
    assert (state.spent, state.reserved) == (D(5), D(0))


async def test_a_counter_gone_while_reserved_is_not_half_rebuilt(replicas, raw) -> None:
    a, _ = replicas
    gone, kept = Charge("g@2026-10", D(10), True), Charge("g@total", D(10), True)
    for charge in (gone, kept):
        await a.load(charge.counter, D(1))
    assert await a.reserve("r", [gone, kept], D(2), ttl=60) is None
    await raw.delete(a.counter_key(gone.counter))  # its window's TTL ran out
    [state] = await a.settle("r", D(1))
    assert (state.counter, state.spent, state.reserved) == (kept.counter, D(2), D(0))
    assert await raw.exists(a.counter_key(gone.counter)) == 0  # still missing: loaded from the ledger
    assert await a.missing([gone.counter, kept.counter]) == [gone.counter]


async def test_an_overflowing_reservation_raises_and_changes_nothing(replicas) -> None:
    a, _ = replicas
    roomy, huge = Charge("o1@total", D(10**9), False), Charge("o2@total", D(10**9), False)
    await a.load(roomy.counter, D(0))
    await a.load(huge.counter, D(9_000_000))
    assert await a.reserve("r", [roomy, huge], D(9_000_000), ttl=60) is None
    with pytest.raises(ResponseError, match="overflow"):
        await a.reserve("r2", [roomy, huge], D(300_000), ttl=60)  # reserved would pass ~$9.2M
    states = await a.states([roomy.counter, huge.counter])
    assert [(s.spent, s.reserved) for s in states.values()] == [
        (D(0), D(9_000_000)),
        (D(9_000_000), D(9_000_000)),
    ]


FULL = from_pico(2**63 - 1)  # what a counter holds at most: $9,223,372.036854775807


async def test_a_settlement_never_fails_on_its_amount_it_saturates_and_ends_the_reservation(replicas, raw) -> None:
    a, _ = replicas
    roomy, huge = Charge("s1@total", D(10**9), True), Charge("s2@total", D(9_100_000), True)
    await a.load(roomy.counter, D(0))
    await a.load(huge.counter, D(9_000_000))
    assert await a.reserve("r", [roomy, huge], D(1), ttl=60) is None
    states = await a.settle("r", D(300_000))  # spent would pass ~$9.2M on the second counter
    assert [(s.counter, s.spent, s.reserved) for s in states] == [
        (roomy.counter, D(300_000), D(0)),
        (huge.counter, FULL, D(0)),
    ]
    assert await raw.hget(a.counter_key(huge.counter), "s") == str(2**63 - 1)
    assert await a.reserve("r2", [huge], D(1), ttl=60) is not None  # a full blocking budget refuses
    # Any amount at all, even one no 64-bit integer holds: settled, and the reservation is gone.
    assert await a.reserve("r3", [roomy], D(1), ttl=60) is None
    [state] = await a.settle("r3", D("1e30"))
    assert (state.spent, state.reserved) == (FULL, D(0))
    assert await raw.exists(a.reservation_key("r3")) == 0
    await a.load("s3@total", D("1e30"))  # a ledger sum past it loads as full, never fails
    assert (await a.states(["s3@total"]))["s3@total"].spent == FULL


async def test_rate_limits_hold_across_replicas(redis_url, namespace, raw) -> None:
    a = await RedisRateLimiter.connect(redis_url, namespace=namespace)
    b = await RedisRateLimiter.connect(redis_url, namespace=namespace)
    try:
        now = 60 * 30_000_000 + 15.0
        results = await asyncio.gather(*((a, b)[i % 2].admit([("k", 3, None)], 1, now) for i in range(10)))
        assert sum(r is None for r in results) == 3
        assert all(r == 45.0 for r in results if r is not None)
        assert 0 < await raw.ttl(a.rate_key("k", 30_000_000)) <= RATE_KEY_TTL
    finally:
        await a.flush_namespace()
        await a.close()
        await b.close()


async def test_namespaces_are_separate(redis_url, namespace) -> None:
    one = await RedisCounters.connect(redis_url, namespace=namespace + "-one")
    two = await RedisCounters.connect(redis_url, namespace=namespace + "-one:x")
    try:
        await one.load("n@total", D(1))
        assert await two.missing(["n@total"]) == ["n@total"]
        await two.load("n@total", D(2))
        await one.flush_namespace()
        assert await two.missing(["n@total"]) == []
    finally:
        await two.flush_namespace()
        await one.close()
        await two.close()
    with pytest.raises(ValueError):
        await RedisCounters.connect(redis_url, namespace="bad{tag}")


async def test_a_redis_that_stops_answering_fails_the_call_at_the_deadline(monkeypatch) -> None:
    from spendgate.budgets import redis_counters

    monkeypatch.setattr(redis_counters, "COMMAND_TIMEOUT", 0.2)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # takes every byte, answers none
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Without a socket timeout (as the gateway connects): only the call's own deadline ends it.
    # redis-hygiene: the silent server above, which is no Redis
    client = redis.asyncio.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=None)
    counters = RedisCounters(client, namespace="silent")
    try:
        for call in (counters.reserve("r", [Charge("x@total", D(1), True)], D(0), ttl=60), counters.settle("r", D(0))):
            task = asyncio.ensure_future(call)
            done, _ = await asyncio.wait({task}, timeout=10)  # a bound on a hang, not on speed
            assert done, "the call hung past its deadline"
            with pytest.raises(TimeoutError):
                task.result()
    finally:
        await client.aclose()
        server.close()

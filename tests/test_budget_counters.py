"""The counter store contract, held by every implementation (in-process and Redis)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from spendgate.budgets.counters import (
    Charge,
    CounterMissing,
    CounterStore,
    InProcessCounters,
    InProcessRateLimiter,
    RateLimiter,
)

D = Decimal


@pytest.fixture(params=["memory", "redis"])
async def counters(request):
    if request.param == "memory":
        store: CounterStore = InProcessCounters()
    else:
        redis_url = request.getfixturevalue("redis_url")
        from spendgate.budgets.redis_counters import RedisCounters

        store = await RedisCounters.connect(redis_url, namespace=f"sgtest-{id(request)}")
    yield store
    if request.param == "redis":
        await store.flush_namespace()  # type: ignore[attr-defined]
    await store.close()


async def test_reserve_settle_release(counters: CounterStore) -> None:
    charge = Charge("b@2026-11", D(10), True)
    assert await counters.missing(["b@2026-11"]) == ["b@2026-11"]
    await counters.load("b@2026-11", D("1.5"))
    await counters.load("b@2026-11", D("99"))  # first load wins
    assert await counters.missing(["b@2026-11"]) == []
    assert await counters.reserve("r1", [charge], D(3), ttl=60) is None
    state = (await counters.states(["b@2026-11"]))["b@2026-11"]
    assert (state.spent, state.reserved) == (D("1.5"), D(3))
    [settled] = await counters.settle("r1", D("0.000000075"))
    assert (settled.spent, settled.reserved) == (D("1.500000075"), D(0))
    assert await counters.settle("r1", D(5)) == []  # settling twice changes nothing
    assert await counters.reserve("r2", [charge], D(2), ttl=60) is None
    await counters.release("r2")
    state = (await counters.states(["b@2026-11"]))["b@2026-11"]
    assert (state.spent, state.reserved) == (D("1.500000075"), D(0))


async def test_an_unloaded_counter_is_reported_and_nothing_changes(counters: CounterStore) -> None:
    loaded, fresh = Charge("loaded@t", D(10), True), Charge("fresh@t", D(10), True)
    await counters.load("loaded@t", D(1))
    with pytest.raises(CounterMissing) as missing:
        await counters.reserve("r", [loaded, fresh], D(2), ttl=60)
    assert missing.value.counters == ["fresh@t"]
    assert (await counters.states(["loaded@t"]))["loaded@t"].reserved == 0
    await counters.load("fresh@t", D(0))
    assert await counters.reserve("r", [loaded, fresh], D(2), ttl=60) is None


async def test_refusal_is_all_or_nothing_and_names_the_budget(counters: CounterStore) -> None:
    roomy, tight, soft = (
        Charge("roomy@t", D(100), True),
        Charge("tight@t", D(5), True),
        Charge("soft@t", D(1), False),
    )
    for charge in (roomy, tight, soft):
        await counters.load(charge.counter, D(0))
    assert await counters.reserve("a", [roomy, tight, soft], D(4), ttl=60) is None
    refused = await counters.reserve("b", [roomy, tight, soft], D(2), ttl=60)
    assert refused is not None
    assert (refused.counter, refused.limit, refused.spent, refused.reserved) == ("tight@t", D(5), D(0), D(4))
    states = await counters.states(["roomy@t", "tight@t", "soft@t"])
    assert [states[c].reserved for c in ("roomy@t", "tight@t", "soft@t")] == [D(4), D(4), D(4)]
    # A soft budget never refuses, even far past its limit.
    assert await counters.reserve("c", [soft], D(50), ttl=60) is None


async def test_an_exhausted_budget_refuses_even_a_free_request(counters: CounterStore) -> None:
    charge = Charge("x@t", D(1), True)
    await counters.load("x@t", D(1))
    assert await counters.reserve("free", [charge], D(0), ttl=60) is not None


async def test_expired_reservations_are_released(counters: CounterStore) -> None:
    charge = Charge("e@t", D(10), True)
    await counters.load("e@t", D(0))
    assert await counters.reserve("dead", [charge], D(9), ttl=0.05) is None
    assert await counters.reserve("blocked", [charge], D(2), ttl=60) is not None
    await asyncio.sleep(0.1)
    assert await counters.purge_expired() == 1
    assert (await counters.states(["e@t"]))["e@t"].reserved == D(0)
    assert await counters.settle("dead", D(9)) == []  # a late settle of an expired one is ignored
    assert await counters.reserve("alive", [charge], D(2), ttl=60) is None


async def test_concurrent_reservations_never_pass_the_limit(counters: CounterStore) -> None:
    charge = Charge("c@t", D("1.00"), True)
    await counters.load("c@t", D("0.70"))
    results = await asyncio.gather(*(counters.reserve(f"r{i}", [charge], D("0.07"), ttl=60) for i in range(40)))
    admitted = [i for i, refused in enumerate(results) if refused is None]
    assert len(admitted) == 4  # 0.70 + 4 x 0.07 = 0.98; a fifth would make 1.05
    for i in admitted:
        await counters.settle(f"r{i}", D("0.07"))
    assert (await counters.states(["c@t"]))["c@t"].spent == D("0.98")


# -- rate limits -----------------------------------------------------------------------------

MINUTE = 60 * 29_000_000  # the start of some minute; times are passed explicitly
T = MINUTE + 20.0


@pytest.fixture(params=["memory", "redis"])
async def limiter(request):
    if request.param == "memory":
        store: RateLimiter = InProcessRateLimiter()
    else:
        redis_url = request.getfixturevalue("redis_url")
        from spendgate.budgets.redis_counters import RedisRateLimiter

        store = await RedisRateLimiter.connect(redis_url, namespace=f"sgtest-{id(request)}")
    yield store
    if request.param == "redis":
        await store.flush_namespace()  # type: ignore[attr-defined]
    await store.close()


async def test_rpm_refuses_the_request_past_the_limit(limiter: RateLimiter) -> None:
    limits = [("key:a", 3, None)]
    assert [await limiter.admit(limits, 10, T + i) for i in range(3)] == [None, None, None]
    retry = await limiter.admit(limits, 10, T + 3)
    assert retry is not None and 0 < retry <= 60
    assert retry == pytest.approx(60 - 23)
    assert await limiter.admit(limits, 10, MINUTE + 59.5) == pytest.approx(0.5)


async def test_tpm_counts_estimated_tokens(limiter: RateLimiter) -> None:
    limits = [("key:a", None, 100)]
    assert await limiter.admit(limits, 60, T) is None
    assert await limiter.admit(limits, 50, T) is not None  # 110 > 100
    assert await limiter.admit(limits, 40, T) is None  # exactly 100: the refused one counted nothing
    assert await limiter.admit(limits, 1, T) is not None
    assert await limiter.admit([("key:a", None, None)], 10**6, T) is None  # no limits, always admitted


async def test_a_new_minute_admits_again(limiter: RateLimiter) -> None:
    limits = [("key:a", 1, 100)]
    assert await limiter.admit(limits, 100, T) is None
    assert await limiter.admit(limits, 1, MINUTE + 59.999) is not None
    assert await limiter.admit(limits, 100, MINUTE + 60) is None
    assert await limiter.admit(limits, 1, MINUTE + 61) is not None


async def test_several_scopes_are_all_or_nothing(limiter: RateLimiter) -> None:
    key, team = ("key:a", 2, None), ("team:x", 1, 1000)
    assert await limiter.admit([key, team], 10, T) is None
    assert await limiter.admit([key, team], 10, T) is not None  # refused by the team...
    assert await limiter.admit([key], 10, T) is None  # ...and not counted on the key
    assert await limiter.admit([key], 10, T) is not None
    assert await limiter.admit([("team:y", 1, None)], 10, T) is None  # scopes are separate


async def test_add_tokens_corrects_the_estimate(limiter: RateLimiter) -> None:
    limits = [("key:a", None, 100), ("team:x", None, 100)]
    assert await limiter.admit(limits, 90, T) is None
    await limiter.add_tokens(["key:a"], -50, T + 1)  # used 40, not 90
    assert await limiter.admit([limits[0]], 60, T + 2) is None  # key: 40 + 60 = 100
    assert await limiter.admit([limits[1]], 60, T + 2) is not None  # team still counts 90
    await limiter.add_tokens(["team:x"], 30, T + 3)  # used more than estimated: 120
    assert await limiter.admit([limits[1]], 0, T + 4) is not None
    await limiter.add_tokens(["key:a", "team:x"], 10**6, MINUTE + 60)  # another minute
    assert await limiter.admit([limits[0]], 1, T + 5) is not None  # key is at 100 in this one
    assert await limiter.admit(limits, 1, MINUTE + 120) is None

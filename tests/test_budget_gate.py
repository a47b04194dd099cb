"""The gate contract (budgets and rate limits admitted and settled together), held by the
in-process and the Redis gate alike; and the Redis gate's round trips per request."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis.asyncio
from redis.asyncio.connection import Connection

from spendgate.attribution import Attribution
from spendgate.budgets.counters import Charge, CounterMissing, Refused
from spendgate.budgets.enforcer import BudgetExceeded, Enforcer, RateLimited
from spendgate.budgets.gate import Gate, InProcessGate, RateRefused
from spendgate.budgets.model import Budget, RateLimit, Scope
from spendgate.budgets.rules import Rules

D = Decimal
MINUTE = 60 * 29_000_000  # the start of some minute; times are passed explicitly
T = MINUTE + 20.0


@pytest.fixture(params=["memory", "redis"])
async def gate(request):
    if request.param == "memory":
        store: Gate = InProcessGate()
    else:
        redis_url = request.getfixturevalue("redis_url")
        from spendgate.budgets.redis_counters import RedisGate

        store = await RedisGate.connect(redis_url, namespace=f"sgtest-{os.getpid()}-{id(request)}")
    yield store
    if request.param == "redis":
        await store.counters.flush_namespace()  # type: ignore[attr-defined]
    await store.close()


async def test_admit_reserves_and_counts_together(gate: Gate) -> None:
    charge = Charge("g@2026-11", D(10), True)
    await gate.counters.load(charge.counter, D(1))
    limits = [("key:a", 2, 1000), ("team:x", None, 1000)]
    assert await gate.admit("r1", [charge], D(3), 60, limits, 400, T) is None
    assert (await gate.counters.states([charge.counter]))[charge.counter].reserved == D(3)
    assert await gate.limiter.admit([("team:x", None, 600)], 200, T) is None  # team: 400 + 200
    assert await gate.limiter.admit([("team:x", None, 600)], 1, T) is not None
    [state] = await gate.settle("r1", D("0.5"), ["key:a", "team:x"], -300, T + 5)  # used 100 tokens
    assert (state.counter, state.spent, state.reserved) == (charge.counter, D("1.5"), D(0))
    assert await gate.limiter.admit([("team:x", None, 600)], 300, T + 6) is None  # 100 + 200 + 300


async def test_a_rate_limit_refusal_leaves_no_reservation(gate: Gate) -> None:
    charge = Charge("g@total", D(10), True)
    await gate.counters.load(charge.counter, D(0))
    limits = [("key:a", 1, None)]
    assert await gate.admit("first", [charge], D(2), 60, limits, 10, T) is None
    refused = await gate.admit("second", [charge], D(2), 60, [("team:x", 5, None), *limits], 10, T + 1)
    assert isinstance(refused, RateRefused) and refused.retry_after == pytest.approx(39)
    assert refused.index == 1  # which limit refused: the key's, not the team's
    assert refused.kind == "rpm"  # and which of its counts: requests
    by_tokens = await gate.admit("third", [charge], D(2), 60, [("team:y", 5, 15)], 20, T + 1)
    assert isinstance(by_tokens, RateRefused) and (by_tokens.index, by_tokens.kind) == (0, "tpm")
    assert (await gate.counters.states([charge.counter]))[charge.counter].reserved == D(2)
    assert await gate.settle("second", D(2), [], 0, T + 1) == []  # no such reservation
    assert (await gate.counters.states([charge.counter]))[charge.counter].spent == D(0)
    assert await gate.counters.purge_expired() == 0


async def test_a_budget_refusal_or_a_missing_counter_counts_no_request(gate: Gate) -> None:
    tight, fresh = Charge("tight@total", D(1), True), Charge("fresh@total", D(1), True)
    await gate.counters.load(tight.counter, D(1))
    limits = [("key:a", 1, 100)]
    refused = await gate.admit("r1", [tight], D(0), 60, limits, 50, T)
    assert isinstance(refused, Refused) and refused.counter == tight.counter
    with pytest.raises(CounterMissing):
        await gate.admit("r2", [fresh], D(0), 60, limits, 50, T)
    assert await gate.admit("r3", [], D(0), 60, limits, 100, T) is None  # the one request, all the tokens
    assert await gate.admit("r4", [], D(0), 60, limits, 0, T) is not None


async def test_without_limits_or_charges_the_other_half_still_applies(gate: Gate) -> None:
    charge = Charge("solo@total", D(5), True)
    await gate.counters.load(charge.counter, D(0))
    assert await gate.admit("b", [charge], D(4), 60, [], 0, T) is None
    assert isinstance(await gate.admit("c", [charge], D(4), 60, [], 0, T), Refused)
    assert await gate.admit("l", [], D(0), 60, [("key:z", 1, None)], 0, T) is None
    assert isinstance(await gate.admit("m", [], D(0), 60, [("key:z", 1, None)], 0, T), RateRefused)
    [state] = await gate.settle("b", D(1), [], 0, T)
    assert (state.spent, state.reserved) == (D(1), D(0))


# -- round trips ---------------------------------------------------------------------------------


class CountingConnection(Connection):
    """A connection that counts what it writes to Redis: one write per command, or per pipeline."""

    writes = 0

    async def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        CountingConnection.writes += 1
        return await super().send_packed_command(command, check_health)


async def test_a_request_costs_one_round_trip_to_admit_and_one_to_settle(redis_url: str) -> None:
    from spendgate.budgets.redis_counters import RedisGate

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True, connection_class=CountingConnection)
    gate = RedisGate(client, namespace=f"sgtest-{os.getpid()}-trips")
    month = Budget("team", Scope.parse("team:t"), D(100), period="month")
    total = Budget("org", Scope.parse("org"), D(1000), period="total")
    loads = []

    async def ledger_spend(scope, window) -> Decimal:
        loads.append((str(scope), window.key))
        return D(0)

    enforcer = Enforcer(gate, ledger_spend, wall_clock=lambda: T)
    enforcer.rules = Rules(
        budgets=(month, total),
        limits=(RateLimit(Scope.parse("team:t"), rpm=100, tpm=10**6), RateLimit(Scope.parse("org"), rpm=100)),
    )
    owner = Attribution(project="p", team="t", cost_center=None, environment=None, key="k")
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    try:
        first = await enforcer.admit("warm", owner, D("0.01"), 500, now)  # loads counters and scripts
        assert first is not None and len(loads) == 2
        await enforcer.settle(first, D("0.002"), 300)
        for i in range(3):
            CountingConnection.writes = 0
            admission = await enforcer.admit(f"r{i}", owner, D("0.01"), 500, now)
            assert admission is not None and len(admission.charged) == 2
            assert CountingConnection.writes == 1
            CountingConnection.writes = 0
            await enforcer.settle(admission, D("0.002"), 300)  # with a token correction
            assert CountingConnection.writes == 1
        assert len(loads) == 2  # loaded once per window
        states = await gate.counters.states([c.counter for _, _, c in admission.charged])
        assert [(s.spent, s.reserved) for s in states.values()] == [(D("0.008"), D(0))] * 2
        # Rate limits alone; the refusal names the limit that refused, not the first that applies.
        enforcer.rules = Rules(
            limits=(RateLimit(Scope.parse("team:t"), rpm=1000), RateLimit(Scope.parse("org"), rpm=5))
        )
        CountingConnection.writes = 0
        admission = await enforcer.admit("lim", owner, D("0.01"), 500, now)
        assert admission is not None and CountingConnection.writes == 1
        with pytest.raises(RateLimited) as limited:
            await enforcer.admit("over", owner, D("0.01"), 500, now)  # 4 counted on org already
        assert limited.value.scope == "org"
    finally:
        await gate.counters.flush_namespace()
        await gate.close()


async def test_the_enforcers_memory_of_counters_stays_bounded_over_many_windows() -> None:
    """The last seen state per budget window feeds the response headers; a daily budget over
    years must not leave one entry per day behind."""
    from datetime import timedelta

    async def ledger_spend(scope, window):
        return D(0)

    enforcer = Enforcer(InProcessGate(), ledger_spend, wall_clock=lambda: T)
    enforcer.rules = Rules(budgets=(Budget(name="daily", scope=Scope.parse("org"), limit_usd=D(1), period="day"),))
    owner = Attribution(project="p", team="t", cost_center=None, environment=None, key="k")
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for day in range(400):
        admission = await enforcer.admit(f"r{day}", owner, D("0.01"), 10, start + timedelta(days=day))
        assert admission is not None
        await enforcer.settle(admission, D("0.001"), 10)
        assert admission.nearest == ("daily", D("0.99"))  # a new day: nothing spent in it yet
    assert len(enforcer._known) <= 4 + 64 + 1


class ReplyLost:
    """A gate whose admissions are made in the store but whose answers never arrive: a Redis
    script that ran, its reply lost to a timeout (or the waiting task cancelled)."""

    def __init__(self, gate: Gate, error: BaseException) -> None:
        self.inner, self.error = gate, error
        self.counters, self.limiter = gate.counters, gate.limiter

    async def admit(self, *args):  # type: ignore[no-untyped-def]
        await self.inner.admit(*args)
        raise self.error


@pytest.mark.parametrize("error", [TimeoutError(), asyncio.CancelledError()], ids=["timeout", "cancelled"])
async def test_an_admission_whose_answer_is_lost_leaves_no_reservation(gate: Gate, error: BaseException) -> None:
    async def ledger_spend(scope, window):
        return D(0)

    budget = Budget(name="team", scope=Scope.parse("team:t"), limit_usd=D(10), period="total")
    enforcer = Enforcer(ReplyLost(gate, error), ledger_spend, wall_clock=lambda: T)  # type: ignore[arg-type]
    enforcer.rules = Rules(budgets=(budget,))
    owner = Attribution(project="p", team="t", cost_center=None, environment=None, key="k")
    with pytest.raises(type(error)):
        await enforcer.admit("lost", owner, D(4), 10, datetime(2026, 11, 23, tzinfo=UTC))
    [state] = (await gate.counters.states(["team|team:t|total|UTC@total"])).values()
    assert (state.spent, state.reserved) == (D(0), D(0))


async def test_a_refusal_says_whether_the_budget_is_spent_or_only_this_request_too_large() -> None:
    """Exhausted: what is left is less than the cheapest request the budget was charged in the
    window (before any, the refused request's input alone). Otherwise a smaller request fits."""
    from spendgate.budgets.enforcer import BudgetExceeded

    async def ledger_spend(scope, window):
        return D(0)

    refused: list[tuple[Decimal, bool]] = []

    class Observer:
        def budget_spent(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

        def budget_refused(self, budget, window, spent, reserved, *, exhausted, at) -> None:  # type: ignore[no-untyped-def]
            refused.append((spent, exhausted))

    enforcer = Enforcer(InProcessGate(), ledger_spend, observer=Observer(), wall_clock=lambda: T)
    enforcer.rules = Rules(budgets=(Budget(name="b", scope=Scope.parse("org"), limit_usd=D(1), period="total"),))
    owner = Attribution(project="p", team="t", cost_center=None, environment=None, key="k")
    now = datetime(2026, 11, 23, tzinfo=UTC)

    async def ask(worst: str, least: str) -> BudgetExceeded:
        with pytest.raises(BudgetExceeded) as exceeded:
            await enforcer.admit(f"r{len(refused)}", owner, D(worst), 10, now, least_cost=lambda: D(least))
        return exceeded.value

    too_large = await ask("2", "0.1")  # nothing spent: only this request's worst case is too much
    assert (too_large.exhausted, too_large.remaining, too_large.requested) == (False, D(1), D(2))
    admission = await enforcer.admit("a", owner, D("0.9"), 10, now)
    assert admission is not None
    await enforcer.settle(admission, D("0.7"), 10)  # the cheapest request charged so far: 0.7
    assert (await ask("0.5", "0.01")).exhausted is True  # 0.3 left, less than any request costs
    assert refused == [(D(0), False), (D("0.7"), True)]

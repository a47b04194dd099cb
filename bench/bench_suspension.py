"""Request-path cost of the suspension check (issue 13).

    python bench/bench_suspension.py [--url redis://127.0.0.1:6379/15] [--requests 5000]

Suspensions live in the ledger and reach each gateway with its rules snapshot (refreshed
like keys and budgets), so a request checks them in memory: ``Rules.suspension_for`` over
the suspended scopes, skipped entirely when there are none. Timed here:

- the check alone with 0, 10 and 100 suspended scopes (none matching the request);
- a whole ``Enforcer.admit`` + ``release`` with one budget, on the in-process gate and on
  the Redis gate, with 0 and with 100 suspensions: the difference is the check's share;
- for comparison, what keeping suspensions in Redis instead would add: one SISMEMBER
  round trip per request;
- trace suspensions (``trace:*`` rules): the check alone and a whole admit + release with
  0, 10 and 1000 suspended traces, for a request whose trace is not suspended (the common
  case: one dict lookup by its trace id) and one whose trace is (refused).

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.attribution import Attribution
from spendgate.budgets.enforcer import Enforcer, ScopeSuspended
from spendgate.budgets.gate import InProcessGate
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.rules import Rules, Suspension

OWNER = Attribution(project="web", team="eng", cost_center=None, environment=None, key="web-prod", feature="chat")
TRACED = replace(OWNER, trace_id="run-live")
SUSPENDED_RUN = replace(OWNER, trace_id="run-7")
TRACE_COUNTS = (0, 10, 1000)
NOW = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)


def line(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"{name:<58} mean {statistics.fmean(samples):8.2f} µs   p50 {q[49]:8.2f}   p99 {q[98]:8.2f}"


def sync_timed(n: int, step: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


async def timed(n: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(min(n // 10, 200)):
        await step()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def suspended(count: int) -> tuple[Suspension, ...]:
    return tuple(Suspension(Scope("key", f"other-{i}"), f"anom_{i}") for i in range(count))


async def ledger_spend(scope: Scope, window: object) -> Decimal:
    return Decimal(0)


async def bench_admit(enforcer: Enforcer, label: str, n: int) -> None:
    base = Rules(budgets=(Budget(name="eng", scope=Scope("team", "eng"), limit_usd=Decimal(10**6), period="month"),))

    async def step() -> None:
        admission = await enforcer.admit("r", OWNER, Decimal("0.01"), 100, NOW)
        if admission is not None:
            await enforcer.release(admission)

    for count in (0, 100):
        enforcer.rules = replace(base, suspensions=suspended(count))
        print(line(f"{label}: admit + release, {count} suspensions", await timed(n, step)))


def suspended_traces(count: int) -> dict[str, Suspension]:
    until = NOW + timedelta(hours=24)
    return {f"run-{i}": Suspension(Scope("trace", f"run-{i}"), f"anom_{i}", until) for i in range(count)}


def bench_trace_check(n: int) -> None:
    for count in TRACE_COUNTS:
        rules = Rules(trace_suspensions=suspended_traces(count))

        def check(rules: Rules = rules) -> object:
            return (rules.suspensions or rules.trace_suspensions) and rules.suspension_for(TRACED, NOW)

        print(line(f"trace check alone, {count} suspended traces", sync_timed(n, check)))


async def bench_trace_admit(enforcer: Enforcer, label: str, n: int) -> None:
    base = Rules(budgets=(Budget(name="eng", scope=Scope("team", "eng"), limit_usd=Decimal(10**6), period="month"),))

    async def passing() -> None:
        admission = await enforcer.admit("r", TRACED, Decimal("0.01"), 100, NOW)
        if admission is not None:
            await enforcer.release(admission)

    async def refused() -> None:
        try:
            await enforcer.admit("r", SUSPENDED_RUN, Decimal("0.01"), 100, NOW)
        except ScopeSuspended:
            return

    for count in TRACE_COUNTS:
        enforcer.rules = replace(base, trace_suspensions=suspended_traces(count))
        print(line(f"{label}: admit + release, {count} suspended traces", await timed(n, passing)))
    print(line(f"{label}: a suspended trace refused (1000 suspended)", await timed(n, refused)))


async def main(url: str | None, n: int) -> None:
    for count in (0, 10, 100):
        rules = Rules(suspensions=suspended(count))

        def check(rules: Rules = rules) -> object:
            return rules.suspensions and rules.suspension_for(OWNER)

        print(line(f"check alone, {count} suspensions", sync_timed(n, check)))
    await bench_admit(Enforcer(InProcessGate(), ledger_spend), "in-process gate", n)
    bench_trace_check(n)
    await bench_trace_admit(Enforcer(InProcessGate(), ledger_spend), "in-process gate", n)
    if url:
        from redis.asyncio import Redis

        from spendgate.budgets.redis_counters import RedisGate

        gate = await RedisGate.connect(url, namespace="bench-suspension")
        await bench_admit(Enforcer(gate, ledger_spend), "Redis gate", n)
        await bench_trace_admit(Enforcer(gate, ledger_spend), "Redis gate", n)
        client = Redis.from_url(url)
        await client.sadd("bench-suspension:suspended", *[f"key:other-{i}" for i in range(100)])
        print(
            line(
                "alternative: SISMEMBER round trip",
                await timed(n, lambda: client.sismember("bench-suspension:suspended", "key:web-prod")),
            )
        )
        await client.delete("bench-suspension:suspended")
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None, help="Redis URL (omit: in-process only)")
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.requests))

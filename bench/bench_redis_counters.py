"""Cost of the Redis budget counters per request, against a real Redis.

    python bench/bench_redis_counters.py [--url redis://127.0.0.1:6379/15] [--requests 5000]

One client, sequential: times a reserve + settle round trip (two EVALSHA) with 1 and with 3
budget windows charged (e.g. key, team, organisation total), a reserve + release, a
rate-limit admit of 2 scopes, and what a gateway request costs through the gate (admit on 3
windows and 2 rate limits, settle with a token correction: two EVALSHA), against a bare PING
(the floor of any command from redis-py's asyncio client); the in-process counters and gate
are timed the same way for comparison.
Runs on uvloop, as the gateway does (``--loop asyncio`` for the default loop).
Uses a namespace of its own and deletes it afterwards.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from spendgate.budgets.counters import Charge, InProcessCounters
from spendgate.budgets.gate import Gate, InProcessGate
from spendgate.budgets.redis_counters import RedisCounters, RedisGate, RedisRateLimiter

COST = Decimal("0.000412500")


async def timed(n: int, step: Callable[[int], Awaitable[object]]) -> list[float]:
    for i in range(min(n // 10, 200)):  # warm up (script load, connection)
        await step(-1 - i)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await step(i)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def line(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return (
        f"{name:<44} mean {statistics.fmean(samples):7.1f} µs   p50 {q[49]:7.1f}   p99 {q[98]:7.1f}"
        f"   ({len(samples)} runs)"
    )


async def bench_counters(store, n: int, label: str) -> None:
    one = [Charge("key-1@2026-11", Decimal(10**6), True)]
    three = [*one, Charge("team-a@2026-11", Decimal(10**6), True), Charge("org@total", Decimal(10**6), False)]
    for charge in three:
        await store.load(charge.counter, Decimal(0))

    def round_trip(charges: list[Charge], tag: str):
        async def step(i: int) -> None:
            assert await store.reserve(f"{tag}{i}", charges, Decimal("0.05"), 60) is None
            await store.settle(f"{tag}{i}", COST)

        return step

    async def reserve_release(i: int) -> None:
        assert await store.reserve(f"rr{i}", three, Decimal("0.05"), 60) is None
        await store.release(f"rr{i}")

    print(line(f"{label}: reserve+settle, 1 window", await timed(n, round_trip(one, "a"))))
    print(line(f"{label}: reserve+settle, 3 windows", await timed(n, round_trip(three, "b"))))
    print(line(f"{label}: reserve+release, 3 windows", await timed(n, reserve_release)))


async def bench_gate(gate: Gate, n: int, label: str) -> None:
    three = [
        Charge("key-1@2026-11", Decimal(10**6), True),
        Charge("team-a@2026-11", Decimal(10**6), True),
        Charge("org@total", Decimal(10**6), False),
    ]
    limits = [("key:1", 10**9, 10**12), ("team:a", 10**9, 10**12)]
    scopes = [scope for scope, _, _ in limits]
    for charge in three:
        await gate.counters.load(charge.counter, Decimal(0))

    async def request(i: int) -> None:
        now = time.time()
        assert await gate.admit(f"g{i}", three, Decimal("0.05"), 60, limits, 700, now) is None
        await gate.settle(f"g{i}", COST, scopes, -200, now)

    print(line(f"{label}: gate admit+settle, 3 windows, 2 limits", await timed(n, request)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="as the gateway: uvloop")
    return parser.parse_args()


async def run(args: argparse.Namespace) -> None:
    namespace = f"sgbench-{os.getpid()}"

    redis_counters = await RedisCounters.connect(args.url, namespace=namespace)
    limiter = await RedisRateLimiter.connect(args.url, namespace=namespace)
    try:
        ping = redis_counters._redis.ping
        print(line("redis: PING (client + loopback round trip)", await timed(args.requests, lambda i: ping())))
        await bench_counters(redis_counters, args.requests, "redis")
        limits = [("key:1", 10**9, 10**12), ("team:a", 10**9, 10**12)]
        print(
            line(
                "redis: rate admit, 2 scopes",
                await timed(args.requests, lambda i: limiter.admit(limits, 500, time.time())),
            )
        )
        await bench_gate(RedisGate(redis_counters._redis, namespace=namespace), args.requests, "redis")
        await bench_counters(InProcessCounters(), args.requests, "memory")
        await bench_gate(InProcessGate(), args.requests, "memory")
    finally:
        await redis_counters.flush_namespace()
        await redis_counters.close()
        await limiter.close()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(run(arguments))
    else:
        asyncio.run(run(arguments))

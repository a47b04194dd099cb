"""One target measured: latency at one connection, throughput at 8 and 64, stream first byte,
CPU per request, peak memory, and (for spendgate) its ledger against what it answered."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from compare import cpu, fixtures, load, probes
from compare.procs import memory_kib
from compare.targets import LedgerCount, Running


@dataclass(frozen=True)
class Durations:
    warm_up: float
    latency: float
    throughput: float
    stream_requests: int

    @classmethod
    def quick(cls) -> Durations:
        return cls(warm_up=1, latency=3, throughput=3, stream_requests=300)

    @classmethod
    def full(cls) -> Durations:
        return cls(warm_up=3, latency=10, throughput=10, stream_requests=2000)


@dataclass
class LedgerCheck:
    answered_2xx: int  # 2xx responses the clients received
    in_flight: int  # sent, no answer received before the load generator stopped
    non2xx: int
    ledger: LedgerCount | None = None

    @property
    def ok(self) -> bool:
        """One event per request: every 2xx the clients got is in the ledger, nothing twice,
        and no more events than requests sent (those in flight when wrk stopped may or may not
        have reached the gateway: either way is right)."""
        if self.ledger is None:
            return False
        low, high = self.answered_2xx, self.answered_2xx + self.in_flight
        return self.ledger.events == self.ledger.distinct and low <= self.ledger.ok <= high

    def describe(self) -> str:
        if self.ledger is None:
            return "ledger not read"
        verdict = "OK" if self.ok else "MISMATCH"
        return (
            f"{verdict}: {self.ledger.events} events ({self.ledger.distinct} distinct, {self.ledger.ok} answered 200) "
            f"for {self.answered_2xx} 2xx answers received by the clients "
            f"(+ {self.in_flight} in flight when wrk stopped, {self.non2xx} non-2xx)"
        )


@dataclass
class Result:
    name: str
    p50_ms: float
    p99_ms: float
    rps8: float
    rps64: float
    cpu_us8: float  # CPU time of the target's processes per request, at 8 connections
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    stream_p50_ms: float
    rss_kib: int
    errors: int  # non-2xx + socket errors over every run
    check: LedgerCheck | None = None
    notes: list[str] = field(default_factory=list)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def measure(target: Running, durations: Durations, workdir: Path, *, keep_running: bool = False) -> Result:
    """Measure ``target``, then stop it and check its ledger (unless ``keep_running``)."""
    say(f"{target.name}: listening on {target.port}")
    target.smoke()
    pg_start = probes.pg_transactions(*target.pg) if target.pg else 0
    script = load.write_script(workdir / f"{slug(target.name)}.lua", fixtures.REQUEST_BODY, target.auth)
    runs = [
        load.wrk(target.port, script, threads=1, connections=1, seconds=durations.warm_up),
        load.wrk(target.port, script, threads=2, connections=8, seconds=durations.warm_up),
    ]
    latency = load.wrk(target.port, script, threads=1, connections=1, seconds=durations.latency, latency=True)
    say(f"{target.name}: 1 connection p50 {latency.p50_ms:.3f} ms, p99 {latency.p99_ms:.3f} ms")
    cpu_before = cpu.cpu_seconds(target.pid)
    at8 = load.wrk(target.port, script, threads=2, connections=8, seconds=durations.throughput)
    cpu_used = cpu.cpu_seconds(target.pid) - cpu_before
    at64 = load.wrk(target.port, script, threads=2, connections=64, seconds=durations.throughput)
    say(f"{target.name}: {at8.rps:,.0f} req/s at 8 connections, {at64.rps:,.0f} at 64")
    runs += [latency, at8, at64]
    stream = load.first_byte(
        target.port, target.stream_body, target.auth, durations.stream_requests, accept_stream=target.accept_stream
    )
    rss = memory_kib(target.pid)
    notes = []
    if target.redis_url:
        trips = probes.redis_trips(target.redis_url, target.port, target.auth, workdir)
        notes.append(trips.describe())
    check = None
    if target.count_ledger is not None:
        extra = trips.requests if target.redis_url else 0
        check = LedgerCheck(
            answered_2xx=1 + sum(run.ok for run in runs) + stream.ok + extra,
            in_flight=sum(run.sent - run.requests for run in runs),
            non2xx=sum(run.non2xx for run in runs) + stream.count - stream.ok,
        )
    # A clean stop (SIGTERM): spendgate drains its ledger first.
    codes: list[int | None] = [] if keep_running else target.stop()
    if check is not None:
        assert target.count_ledger is not None
        check.ledger = target.count_ledger()
        say(f"{target.name}: ledger {check.describe()}")
    if target.pg:
        answered = check.answered_2xx if check else 1
        transactions = probes.pg_transactions(*target.pg) - pg_start
        notes.append(f"PostgreSQL: {transactions / answered:.3f} transactions per request over the run")
    if not keep_running:
        for step in target.cleanup:
            step()
    if any(code not in (0, -15) for code in codes):
        notes.append(f"exit codes {codes}")
    return Result(
        name=target.name,
        p50_ms=latency.p50_ms,
        p99_ms=latency.p99_ms,
        rps8=at8.rps,
        rps64=at64.rps,
        cpu_us8=cpu_used / at8.requests * 1e6 if at8.requests else 0.0,
        ttfb_p50_ms=stream.ttfb_p50_ms,
        ttfb_p99_ms=stream.ttfb_p99_ms,
        stream_p50_ms=stream.total_p50_ms,
        rss_kib=rss,
        errors=sum(run.non2xx + run.socket_errors for run in runs) + stream.count - stream.ok,
        check=check,
        notes=notes,
    )

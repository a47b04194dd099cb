"""Added latency of the gateway per request, against the built-in simulated provider.

    python bench/bench_latency.py [--requests 5000] [--enforce] [--redis redis://127.0.0.1:6379/13]

Starts `spendgate simulator` and `spendgate serve` (SQLite ledger, one worker each) as
separate processes on loopback, then times the same small chat request sent sequentially
over one keep-alive connection straight to the simulator and through the gateway. The
difference of the two distributions is what the gateway adds (authentication,
attribution, JSON parse, upstream relay, usage parse, pricing, ledger enqueue). It also
times the first byte of a stream both ways, and after a clean shutdown checks that the
ledger holds exactly one event per request the gateway answered.

With --enforce the key's requests are under two budgets (org and team, blocking) and a
rate limit, so every request reserves, settles and is counted: what enforcement adds.
With --redis those counters are shared in Redis, as several replicas would use them, and
200 more sequential requests are watched with `redis-cli monitor` to count what each one
sends to Redis (round trips, and commands run inside Lua scripts).

Also prints the gateway process's CPU time per non-stream request (all its threads, from
/proc), which on a shared machine moves less than the latency does.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare.cpu import cpu_seconds
from compare.probes import watch_redis

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[[sim input=120 output=20]] hi"}]})
STREAM_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim input=120 output=20 chunks=8]] hi"}],
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def timed_requests(port: int, auth: str, body: str, count: int, *, first_byte: bool = False) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"authorization": f"Bearer {auth}", "content-type": "application/json"}
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = connection.getresponse()
        if first_byte:
            response.read(1)
            samples.append(time.perf_counter() - start)
            response.read()
        else:
            response.read()
            samples.append(time.perf_counter() - start)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from port {port}")
    connection.close()
    return samples


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(samples)


def ms(value: float) -> str:
    return f"{value * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--enforce", action="store_true", help="budgets and a rate limit on every request")
    parser.add_argument("--redis", default=None, help="Redis URL for shared counters (emptied first!)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="spendgate-bench-"))
    db_url = f"sqlite:///{workdir / 'bench.db'}"

    def cli(*words: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "spendgate", *words, "--db", db_url], check=True, capture_output=True, text=True
        ).stdout

    if args.enforce:
        cli("teams", "create", "bench")
        cli("projects", "create", "bench", "--team", "bench")
        cli("budgets", "create", "--scope", "org", "--limit", "1000000", "--name", "org")
        cli("budgets", "create", "--scope", "team:bench", "--limit", "1000000", "--period", "day", "--name", "team")
        cli("limits", "create", "--scope", "team:bench", "--rpm", "10000000")
    if args.redis:
        import redis

        redis.Redis.from_url(args.redis).flushdb()
    project = ["--project", "bench"] if args.enforce else []
    key = json.loads(cli("keys", "create", "--name", "bench", "--json", *project))["key"]

    sim_port, gateway_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPENDGATE_OPENAI_BASE_URL": f"http://127.0.0.1:{sim_port}/v1",
        "OPENAI_API_KEY": "sk-bench-upstream",
        "SPENDGATE_DB": db_url,
        **({"SPENDGATE_REDIS_URL": args.redis} if args.redis else {}),
    }
    simulator = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "simulator", "--port", str(sim_port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(gateway_port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until_up(sim_port)
        wait_until_up(gateway_port)
        n = args.requests
        timed_requests(sim_port, "sk-direct", BODY, 500)  # warm-up both paths
        timed_requests(gateway_port, key, BODY, 500)
        direct, through = [], []
        gateway_cpu = 0.0
        for _ in range(5):  # interleaved blocks so drift hits both alike
            direct += timed_requests(sim_port, "sk-direct", BODY, n // 5)
            before = cpu_seconds(gateway.pid)
            through += timed_requests(gateway_port, key, BODY, n // 5)
            gateway_cpu += cpu_seconds(gateway.pid) - before
        direct_ttfb = timed_requests(sim_port, "sk-direct", STREAM_BODY, n // 5, first_byte=True)
        through_ttfb = timed_requests(gateway_port, key, STREAM_BODY, n // 5, first_byte=True)
        trips = None
        if args.redis:
            trips = watch_redis(
                args.redis, lambda: timed_requests(gateway_port, key, BODY, 200), workdir / "redis-monitor.log"
            )
    finally:
        gateway.send_signal(signal.SIGTERM)  # clean shutdown: the ledger is flushed
        gateway.wait(30)
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(30)

    answered = 500 + len(through) + len(through_ttfb) + (200 if trips else 0)
    with sqlite3.connect(workdir / "bench.db") as db:
        stored = db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM usage_events").fetchone()

    print(f"requests per path: {len(direct)} non-stream, {len(direct_ttfb)} stream (sequential, keep-alive)")
    print(f"{'':28}{'p50':>12}{'p99':>12}")
    print(f"{'direct to simulator':28}{ms(percentile(direct, 50)):>12}{ms(percentile(direct, 99)):>12}")
    print(f"{'through spendgate':28}{ms(percentile(through, 50)):>12}{ms(percentile(through, 99)):>12}")
    added50 = percentile(through, 50) - percentile(direct, 50)
    added99 = percentile(through, 99) - percentile(direct, 99)
    print(f"{'added by spendgate':28}{ms(added50):>12}{ms(added99):>12}")
    ttfb50 = percentile(through_ttfb, 50) - percentile(direct_ttfb, 50)
    print(f"{'added to stream first byte':28}{ms(ttfb50):>12}")
    print(f"gateway CPU per request: {gateway_cpu / len(through) * 1e6:.0f} µs (all threads, non-stream blocks)")
    if trips is not None:
        round_trips, sent, scripted = trips
        commands = ", ".join(f"{name} {count / 200:.2f}" for name, count in sent.most_common())
        print(
            f"Redis per request: {round_trips / 200:.2f} round trips ({commands}), "
            f"{scripted / 200:.1f} commands inside Lua scripts (redis-cli monitor, 200 sequential requests)"
        )
    print(f"ledger: {stored[0]} events ({stored[1]} distinct) for {answered} answered requests")
    if stored[0] != answered or stored[1] != answered:
        sys.exit("ledger does not match the requests answered")


if __name__ == "__main__":
    main()

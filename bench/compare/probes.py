"""What a request costs the shared stores: Redis commands (MONITOR) and PostgreSQL transactions."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from compare import fixtures
from compare.load import first_byte_plain


@dataclass
class RedisTrips:
    requests: int
    commands: Counter[str]  # commands clients sent to the benchmark's database
    round_trips: int  # a MULTI … EXEC transaction (pipelined by redis-py) counted once
    scripted: int  # commands run inside Lua scripts (EVALSHA) for them

    def per_request(self) -> tuple[float, float]:
        return self.round_trips / self.requests, self.scripted / self.requests

    def describe(self) -> str:
        per = ", ".join(f"{name} {n / self.requests:.2f}" for name, n in self.commands.most_common())
        trips, scripted = self.per_request()
        return (
            f"Redis per request: {trips:.2f} round trips (commands sent: {per}; a MULTI…EXEC counted as one trip), "
            f"{scripted:.1f} commands run inside Lua scripts (redis-cli monitor, {self.requests} sequential requests)"
        )


def redis_trips(redis_url: str, port: int, auth: str | None, workdir: Path, requests: int = 200) -> RedisTrips:
    """Sequential requests while `redis-cli monitor` watches: what each one sends to Redis."""
    trips, commands, scripted = watch_redis(
        redis_url, lambda: first_byte_plain(port, fixtures.REQUEST_BODY, auth, requests), workdir / "redis-monitor.log"
    )
    return RedisTrips(requests, commands, trips, scripted)


def watch_redis(redis_url: str, send: Callable[[], object], log: Path) -> tuple[int, Counter[str], int]:
    """What ``send`` makes clients send to the Redis database of ``redis_url``, watched with
    ``redis-cli monitor`` (its output kept in ``log``): (round trips, commands sent, commands
    run inside Lua scripts). A MULTI … EXEC (pipelined by redis-py) counts as one round trip."""
    url = urlparse(redis_url)
    db = (url.path or "/0").lstrip("/") or "0"
    with log.open("wb") as out:
        monitor = subprocess.Popen(
            ["redis-cli", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379), "monitor"], stdout=out
        )
        try:
            time.sleep(0.3)
            send()
            time.sleep(0.3)
        finally:
            monitor.terminate()
            monitor.wait(10)
    commands: Counter[str] = Counter()
    in_multi: set[str] = set()
    trips = scripted = 0
    # 1700000000.000000 [11 127.0.0.1:50000] "EVALSHA" "…"   /   … [11 lua] "GET" "…"
    for line in log.read_text(errors="replace").splitlines():
        _, _, rest = line.partition(f"[{db} ")
        if not rest:
            continue
        client, _, args = rest.partition("] ")
        command = args.split(" ", 1)[0].strip('"').upper()
        if client == "lua":
            scripted += 1
            continue
        commands[command] += 1
        if command == "MULTI":
            in_multi.add(client)
        elif command == "EXEC":
            in_multi.discard(client)
            trips += 1
        elif client not in in_multi:
            trips += 1
    return trips, commands, scripted


def pg_transactions(pg_url: str, database: str) -> int:
    """Transactions committed or rolled back in ``database`` so far (the statistics collector's)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("SELECT pg_stat_clear_snapshot()")
        row = db.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0

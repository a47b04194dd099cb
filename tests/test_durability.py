"""Nothing answered is lost, nothing is counted twice: a gateway SIGKILLed under load, and a
database that goes away while traffic flows. Real processes, real files, real databases."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from spendgate.gateway import create_app
from spendgate.ledger.events import UsageEvent
from spendgate.settings import Settings
from spendgate.simulator import serve_in_thread
from tests.conftest import Simulator
from tests.replicas import Replica, ReplicaSet, replica_env
from tests.test_spool import FailingStore

SHAPES = ("openai", "openai-stream", "anthropic", "anthropic-stream")


@dataclass
class Sent:
    """One request as the client saw it."""

    trace: str
    shape: str
    input: int
    output: int
    slow: bool = False
    answered: bool = False  # the client received the complete answer
    error: str | None = None

    @property
    def stream(self) -> bool:
        return self.shape.endswith("-stream")


def send(client: httpx.Client, base_url: str, key: str, sent: Sent, timing: str) -> None:
    """Send ``sent`` and note whether the complete answer arrived (a stream: its last event)."""
    text = f"[[sim input={sent.input} output={sent.output} {timing}]] {sent.trace}"
    headers = {"authorization": f"Bearer {key}", "x-spendgate-trace-id": sent.trace}
    messages = [{"role": "user", "content": text}]
    if sent.shape.startswith("openai"):
        url, body = f"{base_url}/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages}
        last = "data:[DONE]"
    else:
        url, body = f"{base_url}/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": messages}
        last = '"type":"message_stop"'
    try:
        if not sent.stream:
            response = client.post(url, json=body, headers=headers)
            sent.answered = response.status_code == 200 and "usage" in response.json()
            if not sent.answered:
                sent.error = f"{response.status_code} {response.text[:200]}"
            return
        with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
            done = False
            for line in response.iter_lines():
                done = done or last in line.replace(" ", "")
            sent.answered = response.status_code == 200 and done
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        sent.error = repr(exc)


def trace_of(record: Any) -> str | None:
    try:
        return record.body["messages"][0]["content"].rsplit(" ", 1)[-1]
    except (TypeError, KeyError, IndexError, AttributeError):
        return None


def upstream_traces(simulator: Simulator) -> set[str]:
    """Traces of the requests that reached the provider."""
    return {t for t in map(trace_of, simulator.log.records) if t}


def sqlite_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM usage_events")]


def check_ledger(rows: list[dict[str, Any]], sent: list[Sent], reached: set[str]) -> dict[str, int]:
    """The promise, checked request by request. Returns the tally for the assertion message."""
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "an event id is in the ledger twice"
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_trace.setdefault(row["trace_id"], []).append(row)
    known = {s.trace for s in sent}
    assert set(by_trace) <= known, f"events nobody sent: {set(by_trace) - known}"
    assert all(len(v) == 1 for v in by_trace.values()), "a request is in the ledger twice"
    answered = [s for s in sent if s.answered]
    in_flight = [s for s in sent if not s.answered and s.trace in reached]
    never_sent = [s for s in sent if not s.answered and s.trace not in reached]
    for s in answered:
        assert s.trace in by_trace, f"answered request {s} is missing from the ledger"
        [row] = by_trace[s.trace]
        assert (row["status"], bool(row["estimated"])) == ("ok", False), (s, row)
        assert (row["input_tokens"], row["output_tokens"]) == (s.input, s.output), (s, row)
        assert row["cost_usd"] is not None and Decimal(str(row["cost_usd"])) > 0
    for s in in_flight:
        assert s.trace in by_trace, f"request {s} was in flight upstream and is missing from the ledger"
        [row] = by_trace[s.trace]
        if s.slow or row["status"] != "ok":
            # The provider may bill it; the gateway never learnt what it used.
            assert (row["status"], bool(row["estimated"])) == ("incomplete", True), (s, row)
            assert row["input_tokens"] > 0 and row["output_tokens"] == 0, (s, row)
            assert Decimal(str(row["cost_usd"])) > 0
        else:
            # The provider had reported its usage before the gateway died: recorded exactly.
            assert (row["input_tokens"], row["output_tokens"], bool(row["estimated"])) == (s.input, s.output, False)
    extra = 0
    for s in never_sent:
        # Killed between spooling its start and sending it: counted at an estimate, never lost.
        for row in by_trace.get(s.trace, []):
            assert (row["status"], bool(row["estimated"])) == ("incomplete", True), (s, row)
            extra += 1
    tally = {"answered": len(answered), "in_flight": len(in_flight), "extra": extra, "rows": len(rows)}
    assert len(rows) == len(answered) + len(in_flight) + extra, tally
    return tally


# --- SIGKILL under load ------------------------------------------------------------------------
class Load:
    """Concurrent streaming and non-streaming requests until stopped; a few slow ones that are
    sure to be in flight when the gateway dies."""

    def __init__(self, base_url: str, key: str, workers: int = 6, slow: int = 8) -> None:
        self.base_url, self.key = base_url, key
        self.sent: list[Sent] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._rng = random.Random(4)
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(workers)]
        self._threads += [threading.Thread(target=self._slow, args=(i,), daemon=True) for i in range(slow)]

    def _new(self, shape: str, slow: bool = False) -> Sent:
        with self._lock:
            sent = Sent(f"t{len(self.sent):05d}", shape, self._rng.randint(10, 5000), self._rng.randint(1, 300), slow)
            self.sent.append(sent)
            return sent

    def _worker(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = n
            while not self.stop.is_set():
                sent = self._new(SHAPES[i % len(SHAPES)])
                i += 1
                timing = f"chunks=6 chunk_delay_ms={i % 15}" if sent.stream else f"delay_ms={i % 20}"
                send(client, self.base_url, self.key, sent, timing)
                if sent.error:
                    return  # the gateway is gone

    def _slow(self, n: int) -> None:
        sent = self._new(SHAPES[n % len(SHAPES)], slow=True)
        timing = "chunks=50 chunk_delay_ms=400" if sent.stream else "delay_ms=20000"
        with httpx.Client(timeout=60) as client:
            send(client, self.base_url, self.key, sent, timing)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive()

    @property
    def answered(self) -> int:
        return sum(s.answered for s in self.sent)


def _create_key(replicas: ReplicaSet) -> str:
    replicas.cli("teams", "create", "ops")
    replicas.cli("projects", "create", "bot", "--team", "ops")
    return json.loads(replicas.cli("keys", "create", "--name", "bot", "--project", "bot", "--json"))["key"]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_sigkill_under_load_loses_nothing_answered_and_counts_nothing_twice(
    tmp_path: Path, simulator: Simulator
) -> None:
    db = tmp_path / "ledger.db"
    # A long flush interval: at the kill, the answered requests are only in the spool.
    replicas = ReplicaSet(tmp_path, replica_env(tmp_path, simulator.url, SPENDGATE_FLUSH_INTERVAL="30"))
    key = _create_key(replicas)
    first = replicas.start()
    load = Load(first.url, key)
    try:
        load.start()
        slow = [s for s in load.sent if s.slow]
        _wait(lambda: {s.trace for s in slow} <= upstream_traces(simulator), 20, "slow requests never went upstream")
        _wait(lambda: load.answered >= 150, 30, "the load did not get going")
        first.kill()  # SIGKILL: no shutdown, nothing flushed
        load.join()
        reached = upstream_traces(simulator)
        in_ledger_at_the_kill = len(sqlite_rows(db))

        second = replicas.start()  # the same settings: recovers before serving
        expected = sum(s.answered or s.trace in reached for s in load.sent)
        _wait(lambda: len(sqlite_rows(db)) >= expected, 30, "recovered events did not land")
        second.stop()
        assert "request(s) in flight (now incomplete, estimated)" in second.output()
        tally = check_ledger(sqlite_rows(db), load.sent, reached)
        print("SIGKILL under load:", tally, "in the ledger at the kill:", in_ledger_at_the_kill)
        assert in_ledger_at_the_kill < tally["answered"]  # the rest came back from the spool
        assert all(not s.answered for s in load.sent if s.slow)
        assert tally["in_flight"] >= len(slow)
        assert tally["answered"] >= 150
        # Everything shipped: the spool is gone, nothing would be shipped twice by a later start.
        assert not list(Path(f"{db}.spool").rglob("*.jsonl"))
        third = replicas.start()
        third.stop()
        assert len(sqlite_rows(db)) == tally["rows"]
    finally:
        load.stop.set()
        replicas.stop_all()


# --- the database goes away ----------------------------------------------------------------------
def _traffic(base_url: str, key: str, sent: list[Sent], count: int, rng: random.Random) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            s = Sent(f"t{len(sent):05d}", SHAPES[len(sent) % len(SHAPES)], rng.randint(10, 5000), rng.randint(1, 300))
            sent.append(s)
            send(client, base_url, key, s, "chunks=3")
            assert s.answered, s


def test_sqlite_store_failing_for_a_while_the_gateway_keeps_serving_and_every_event_lands_once(
    tmp_path: Path, simulator: Simulator
) -> None:
    from spendgate import management

    db = tmp_path / "ledger.db"
    store = FailingStore(db)
    management.create_team(store, "ops")
    management.create_project(store, "bot", "ops")
    key = management.create_key(store, "bot", project="bot").secret
    settings = Settings(
        db=f"sqlite:///{db}",
        openai_base_url=f"{simulator.url}/v1",
        anthropic_base_url=simulator.url,
        credentials={"OPENAI_API_KEY": "sk-upstream", "ANTHROPIC_API_KEY": "sk-ant-upstream"},
        flush_interval=0.05,
        spool_memory_events=25,  # small, so the outage spills to disk and is read back
    )
    app = create_app(settings, store=store)
    server = serve_in_thread(app, lifespan="on")
    sent: list[Sent] = []
    rng = random.Random(9)
    try:
        _traffic(server.url, key, sent, 20, rng)
        _wait(lambda: app.writer.pending == 0, 10, "events did not ship")
        store.down = True
        _traffic(server.url, key, sent, 120, rng)  # the gateway keeps answering
        assert store.failures > 0
        assert app.writer.pending == 120
        assert app.writer.in_memory <= 25
        assert httpx.get(f"{server.url}/healthz").json()["pending_events"] == 120
        store.down = False
        _wait(lambda: app.writer.pending == 0, 30, "events did not ship once the store was back")
        _traffic(server.url, key, sent, 10, rng)
    finally:
        server.stop(timeout=10)
        store.close()
    check_ledger(sqlite_rows(db), sent, {s.trace for s in sent})
    assert len(sqlite_rows(db)) == 150


@pytest.fixture
def postgres_through_proxy(postgres_db: Callable[[], str]) -> Iterator[tuple[str, str, Any]]:
    """(URL through a proxy the test controls, direct URL, the proxy) for a fresh schema."""
    from urllib.parse import urlsplit, urlunsplit

    from spendgate.ledger.store import StoreError, open_store
    from tests.tcp_proxy import TcpProxy

    direct = postgres_db()
    try:
        open_store(direct).close()
    except StoreError as exc:
        if "not built yet" in str(exc):
            pytest.skip(f"the PostgreSQL store is not built yet ({exc})")
        raise
    parts = urlsplit(direct)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    through = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    yield through, direct, proxy
    proxy.close()


def postgres_rows(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM usage_events").fetchall()


def _healthz(replica: Replica) -> dict[str, Any]:
    return httpx.get(f"{replica.url}/healthz", timeout=5).json()


def test_postgres_cut_off_while_traffic_flows_every_event_lands_once(
    tmp_path: Path, simulator: Simulator, postgres_through_proxy: tuple[str, str, Any]
) -> None:
    through, direct, proxy = postgres_through_proxy
    env = replica_env(
        tmp_path,
        simulator.url,
        SPENDGATE_DB=through,
        SPENDGATE_SPOOL_DIR=str(tmp_path / "spool"),
        SPENDGATE_SPOOL_MEMORY_EVENTS="30",
    )
    replicas = ReplicaSet(tmp_path, {**env, "SPENDGATE_DB": direct})
    key = _create_key(replicas)
    replicas.env = env
    sent: list[Sent] = []
    rng = random.Random(11)
    try:
        gateway = replicas.start()
        _traffic(gateway.url, key, sent, 20, rng)
        _wait(lambda: len(postgres_rows(direct)) == 20, 20, "events did not reach PostgreSQL")

        proxy.cut()  # the database is gone: connections reset, new ones refused
        _traffic(gateway.url, key, sent, 100, rng)  # ...and the gateway keeps answering
        assert len(postgres_rows(direct)) == 20
        assert _healthz(gateway)["pending_events"] == 100

        proxy.restore()
        _wait(lambda: _healthz(gateway)["pending_events"] == 0, 60, "events did not ship once PostgreSQL was back")
        _traffic(gateway.url, key, sent, 10, rng)
        gateway.stop()
    finally:
        replicas.stop_all()
    rows = postgres_rows(direct)
    check_ledger(rows, sent, {s.trace for s in sent})
    assert len(rows) == 130


def test_postgres_cut_off_then_the_gateway_killed_the_spool_ships_after_both_come_back(
    tmp_path: Path, simulator: Simulator, postgres_through_proxy: tuple[str, str, Any]
) -> None:
    through, direct, proxy = postgres_through_proxy
    env = replica_env(tmp_path, simulator.url, SPENDGATE_DB=through, SPENDGATE_SPOOL_DIR=str(tmp_path / "spool"))
    replicas = ReplicaSet(tmp_path, {**env, "SPENDGATE_DB": direct})
    key = _create_key(replicas)
    replicas.env = env
    sent: list[Sent] = []
    rng = random.Random(12)
    try:
        gateway = replicas.start()
        _traffic(gateway.url, key, sent, 10, rng)
        proxy.cut()
        _traffic(gateway.url, key, sent, 60, rng)
        gateway.kill()  # the events of the outage exist only in the spool now
        assert len(postgres_rows(direct)) <= 10
        assert list((tmp_path / "spool").rglob("*.jsonl"))
        proxy.restore()
        again = replicas.start()
        _wait(lambda: len(postgres_rows(direct)) >= 70, 60, "spooled events did not land")
        again.stop()
    finally:
        replicas.stop_all()
    rows = postgres_rows(direct)
    check_ledger(rows, sent, {s.trace for s in sent})
    assert len(rows) == 70
    assert not list((tmp_path / "spool").rglob("*.jsonl"))


def test_unfinished_event_is_priced_like_the_request_would_have_been() -> None:
    from datetime import UTC, datetime

    from spendgate.gateway.accounting import unfinished_event
    from spendgate.pricing import PriceBook

    event: UsageEvent = unfinished_event(
        {
            "id": "r1",
            "ts": datetime(2025, 6, 1, tzinfo=UTC).isoformat(),
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "endpoint": "/v1/messages",
            "stream": True,
            "project": "bot",
            "team": "ops",
            "tags": {"agent": "x"},
            "input_tokens": 1_000_000,
        },
        PriceBook(),
    )
    assert (event.status, event.estimated, event.http_status) == ("incomplete", True, 0)
    assert (event.input_tokens, event.output_tokens) == (1_000_000, 0)
    assert event.cost_usd == Decimal("1")  # claude-haiku-4-5: $1 per million input tokens
    assert (event.project, event.team, event.tags) == ("bot", "ops", {"agent": "x"})

"""The SQLite ledger and the batching writer, on real database files in tmp_path."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from spendgate import management
from spendgate.ledger.events import EventIds, UsageEvent, new_event_id
from spendgate.ledger.spool.writer import EventWriter
from spendgate.ledger.store import StoreError, open_store
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.reports.spec import ReportError, ReportQuery, parse_dimensions

_ids = count(1)


def event(**fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": f"ev-{next(_ids):08d}",
        "ts": datetime(2025, 3, 10, 12, 0, tzinfo=UTC),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "cost_usd": Decimal("0.001"),
    }
    values.update(fields)
    return UsageEvent(**values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "ledger.db")
    yield s
    s.close()


def count_rows(path: Path | str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]


FIGURES = {
    "cost_usd",
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
}


def rows_by(store: SQLiteStore, *by: str, **kwargs: Any) -> list[dict[str, Any]]:
    return store.report(ReportQuery(by=by, **kwargs)).as_json()["rows"]


# --- appending ----------------------------------------------------------------------------
def test_append_stores_every_field(store: SQLiteStore) -> None:
    e = event(
        project="checkout",
        team="payments",
        cost_center="CC-1",
        feature="search",
        environment="staging",
        customer="acme",
        key="ci-key",
        trace_id="tr-1",
        tags={"agent": "copilot", "run": "7"},
        input_tokens=1000,
        cached_input_tokens=400,
        cache_write_tokens=100,
        cache_write_1h_tokens=50,
        output_tokens=200,
        reasoning_tokens=30,
        cost_usd=Decimal("0.00412500"),
        rates={"input": "0.15"},
        price_source="genai-prices",
        estimated=True,
        latency_ms=12.5,
        upstream_request_id="req_123",
        stream=True,
        status="incomplete",
    )
    assert store.append_events([e]) == 1
    [stored] = store.list_events()
    assert stored["id"] == e.id
    assert stored["ts"] == "2025-03-10T12:00:00.000000Z"
    assert stored["project"] == "checkout"
    assert stored["team"] == "payments"
    assert stored["cost_center"] == "CC-1"
    assert stored["feature"] == "search"
    assert stored["environment"] == "staging"
    assert stored["customer"] == "acme"
    assert stored["key"] == "ci-key"
    assert stored["trace_id"] == "tr-1"
    assert stored["tags"] == {"agent": "copilot", "run": "7"}
    assert (stored["input_tokens"], stored["cached_input_tokens"], stored["cache_write_tokens"]) == (
        1000,
        400,
        100,
    )
    assert (stored["output_tokens"], stored["reasoning_tokens"]) == (200, 30)
    assert stored["cost_usd"] == "0.004125"
    assert stored["rates"] == {"input": "0.15"}
    assert stored["estimated"] is True
    assert stored["stream"] is True
    assert stored["status"] == "incomplete"
    assert stored["upstream_request_id"] == "req_123"


def test_append_same_id_once_in_batch_and_across_batches(tmp_path: Path, store: SQLiteStore) -> None:
    a, b, c = event(), event(), event()
    assert store.append_events([a, b, a]) == 2
    assert store.append_events([a, b]) == 0
    assert store.append_events([b, c]) == 1
    assert store.append_events([]) == 0
    assert count_rows(tmp_path / "ledger.db") == 3
    assert sorted(e["id"] for e in store.list_events()) == sorted([a.id, b.id, c.id])


def test_duplicate_id_keeps_the_first_version(store: SQLiteStore) -> None:
    first = event(cost_usd=Decimal("0.5"))
    store.append_events([first])
    store.append_events([event(id=first.id, cost_usd=Decimal("9"))])
    assert store.report(ReportQuery()).total_cost_usd == Decimal("0.5")


def test_ledger_is_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "ledger.db"  # parent folders are created
    s = SQLiteStore(path)
    s.append_events([event(), event()])
    s.close()
    again = SQLiteStore.from_url(f"sqlite:///{path}")
    try:
        assert len(again.list_events()) == 2
    finally:
        again.close()


def test_open_store_urls(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/x.db")
    s.close()
    assert (tmp_path / "x.db").is_file()
    with pytest.raises(StoreError):
        open_store("mysql://nope")
    with pytest.raises(StoreError):
        open_store("sqlite://")


def test_non_utc_timestamps_are_stored_in_utc(store: SQLiteStore) -> None:
    # 01:00 on 1 May at UTC+02:00 is still 30 April in UTC.
    ts = datetime(2025, 5, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    store.append_events([event(ts=ts)])
    assert store.list_events()[0]["ts"] == "2025-04-30T23:00:00.000000Z"
    assert rows_by(store, "day")[0]["day"] == "2025-04-30"


def test_new_event_ids_sort_like_time() -> None:
    earlier = new_event_id(datetime(2025, 1, 1, tzinfo=UTC))
    later = new_event_id(datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert earlier < later
    assert len(earlier) == 32
    assert new_event_id(datetime(2025, 1, 1, tzinfo=UTC)) != earlier


def test_counter_ids_sort_like_time_and_never_repeat() -> None:
    ids = EventIds()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    earlier = ids(at)
    assert len(earlier) == 32 and int(earlier, 16) >= 0
    assert earlier < ids(datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert earlier[:12] == new_event_id(at)[:12]  # the same time prefix as the random ids
    # Two writers (two processes, or two starts of one) in the same millisecond.
    other = EventIds()
    many = [ids(at) for _ in range(10_000)] + [other(at) for _ in range(10_000)]
    assert len(set(many)) == len(many)


def test_counter_ids_of_a_forked_child_differ_from_its_parent() -> None:
    ids = EventIds()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without pytest's clean-up
        os.write(write, "".join(ids(at) for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    child = {text[i : i + 32] for i in range(0, len(text), 32)}
    parent = {ids(at) for _ in range(100)}
    assert len(child) == 100 and not child & parent


# --- reports ------------------------------------------------------------------------------
@pytest.fixture
def filled(store: SQLiteStore) -> SQLiteStore:
    d = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
    store.append_events(
        [
            event(
                ts=d,
                project="checkout",
                team="payments",
                feature="cart",
                environment="production",
                customer="acme",
                model="gpt-4o",
                provider="openai",
                key="k1",
                trace_id="t1",
                tags={"agent": "copilot"},
                input_tokens=1000,
                output_tokens=200,
                cached_input_tokens=400,
                cost_usd=Decimal("0.004"),
            ),
            event(
                ts=d + timedelta(days=1),
                project="checkout",
                team="payments",
                feature="search",
                environment="staging",
                customer="globex",
                model="claude-haiku-4-5",
                provider="anthropic",
                key="k2",
                trace_id="t1",
                tags={"agent": "copilot", "run": "2"},
                input_tokens=500,
                output_tokens=50,
                cache_write_tokens=300,
                cost_usd=Decimal("0.0025"),
            ),
            event(
                ts=datetime(2025, 4, 1, 0, 0, tzinfo=UTC),
                project="support",
                team="cx",
                feature="cart",
                environment="production",
                model="gpt-4o",
                provider="openai",
                key="k1",
                tags={"agent": "triage"},
                input_tokens=10,
                output_tokens=5,
                reasoning_tokens=3,
                cost_usd=Decimal("0.0001"),
            ),
            event(
                ts=datetime(2025, 4, 2, 23, 59, 59, 999999, tzinfo=UTC),
                model="gpt-4o",
                key="k3",
                input_tokens=7,
                output_tokens=1,
                cost_usd=Decimal("0.00002"),
            ),
        ]
    )
    return store


@pytest.mark.parametrize(
    ("dim", "expected"),
    [
        ("project", {"checkout": "0.0065", "support": "0.0001", "unallocated": "0.00002"}),
        ("team", {"payments": "0.0065", "cx": "0.0001", None: "0.00002"}),
        ("feature", {"cart": "0.0041", "search": "0.0025", None: "0.00002"}),
        ("environment", {"production": "0.0041", "staging": "0.0025", None: "0.00002"}),
        ("customer", {"acme": "0.004", "globex": "0.0025", None: "0.00012"}),
        ("model", {"gpt-4o": "0.00412", "claude-haiku-4-5": "0.0025"}),
        ("provider", {"openai": "0.00412", "anthropic": "0.0025"}),
        ("key", {"k1": "0.0041", "k2": "0.0025", "k3": "0.00002"}),
        ("trace", {"t1": "0.0065", None: "0.00012"}),
        (
            "day",
            {"2025-03-10": "0.004", "2025-03-11": "0.0025", "2025-04-01": "0.0001", "2025-04-02": "0.00002"},
        ),
        ("month", {"2025-03": "0.0065", "2025-04": "0.00012"}),
        ("tag:agent", {"copilot": "0.0065", "triage": "0.0001", None: "0.00002"}),
        ("tag:run", {"2": "0.0025", None: "0.00412"}),
    ],
)
def test_report_by_each_dimension(filled: SQLiteStore, dim: str, expected: dict[str | None, str]) -> None:
    result = filled.report(ReportQuery(by=(dim,))).as_json()
    assert {row[dim]: row["cost_usd"] for row in result["rows"]} == expected
    assert result["total_cost_usd"] == "0.00662"
    assert result["total_requests"] == 4
    # every row names exactly its dimension, besides the figures
    for row in result["rows"]:
        assert set(row) - FIGURES == {dim}


def test_report_row_figures(filled: SQLiteStore) -> None:
    rows = {r["project"]: r for r in rows_by(filled, "project")}
    assert rows["checkout"] == {
        "project": "checkout",
        "cost_usd": "0.0065",
        "requests": 2,
        "input_tokens": 1500,
        "output_tokens": 250,
        "cached_input_tokens": 400,
        "cache_write_tokens": 300,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "unpriced_requests": 0,
        "estimated_requests": 0,
        "error_requests": 0,
    }
    assert rows["support"]["reasoning_tokens"] == 3
    # biggest spend first
    assert [r["project"] for r in rows_by(filled, "project")] == ["checkout", "support", "unallocated"]


def test_report_by_two_dimensions(filled: SQLiteStore) -> None:
    rows = rows_by(filled, "project", "feature")
    assert [(r["project"], r["feature"], r["cost_usd"], r["requests"]) for r in rows] == [
        ("checkout", "cart", "0.004", 1),
        ("checkout", "search", "0.0025", 1),
        ("support", "cart", "0.0001", 1),
        ("unallocated", None, "0.00002", 1),
    ]


def test_report_without_dimensions_is_one_total(filled: SQLiteStore) -> None:
    result = filled.report(ReportQuery()).as_json()
    assert len(result["rows"]) == 1
    assert result["rows"][0]["cost_usd"] == "0.00662"
    assert result["rows"][0]["requests"] == 4


def test_report_since_until_inclusive(filled: SQLiteStore) -> None:
    def total(since: date | None, until: date | None) -> tuple[str, int]:
        result = filled.report(ReportQuery(since=since, until=until)).as_json()
        return result["total_cost_usd"], result["total_requests"]

    assert total(date(2025, 3, 10), date(2025, 3, 10)) == ("0.004", 1)
    assert total(date(2025, 3, 11), date(2025, 4, 1)) == ("0.0026", 2)  # 4-01 00:00:00 included
    assert total(date(2025, 4, 2), date(2025, 4, 2)) == ("0.00002", 1)  # 23:59:59.999999 included
    assert total(date(2025, 4, 3), None) == ("0", 0)
    assert total(None, date(2025, 3, 9)) == ("0", 0)
    assert total(date(2025, 3, 11), None) == ("0.00262", 3)
    assert total(None, date(2025, 3, 31)) == ("0.0065", 2)


def test_report_until_before_since_refused() -> None:
    with pytest.raises(ReportError):
        ReportQuery(since=date(2025, 2, 2), until=date(2025, 2, 1))


def test_report_empty_ledger(store: SQLiteStore) -> None:
    assert store.report(ReportQuery()).as_json()["rows"] == []
    assert store.report(ReportQuery(by=("project",))).as_json()["total_cost_usd"] == "0"


def test_decimal_totals_are_exact(store: SQLiteStore) -> None:
    store.append_events([event(cost_usd=Decimal("0.000000075"), project="p") for _ in range(1000)])
    result = store.report(ReportQuery(by=("project",)))
    assert result.rows[0].cost_usd == Decimal("0.000075")
    assert result.total_cost_usd == Decimal("0.000075")
    assert result.as_json()["total_cost_usd"] == "0.000075"
    assert result.rows[0].requests == 1000


def test_decimal_sum_where_floats_would_drift(store: SQLiteStore) -> None:
    # Ten events of 0.1 are exactly 1 (a float sum gives 0.9999999999999999).
    store.append_events([event(cost_usd=Decimal("0.1")) for _ in range(10)])
    assert store.report(ReportQuery()).as_json()["total_cost_usd"] == "1"
    store.append_events([event(cost_usd=Decimal("0.2"), project="x")])
    assert store.report(ReportQuery()).total_cost_usd == Decimal("1.2")


def test_unpriced_events_counted_not_summed(store: SQLiteStore) -> None:
    store.append_events(
        [
            event(project="p", model="mystery-model", cost_usd=None, input_tokens=100),
            event(project="p", cost_usd=Decimal("0.25"), input_tokens=10),
            event(project="q", model="mystery-model", cost_usd=None),
        ]
    )
    result = store.report(ReportQuery(by=("project",)))
    data = result.as_json()
    rows = {r["project"]: r for r in data["rows"]}
    assert rows["p"]["cost_usd"] == "0.25"
    assert rows["p"]["requests"] == 2
    assert rows["p"]["unpriced_requests"] == 1
    assert rows["p"]["input_tokens"] == 110
    assert rows["q"]["cost_usd"] is None  # only unpriced requests: the cost is unknown, not 0
    assert rows["q"]["unpriced_requests"] == 1
    assert data["total_cost_usd"] == "0.25"
    assert data["unpriced_requests"] == 2
    unpriced = [e for e in store.list_events() if e["model"] == "mystery-model"]
    assert all(e["cost_usd"] is None and e["priced"] is False for e in unpriced)


def test_estimated_and_error_requests_counted(store: SQLiteStore) -> None:
    store.append_events(
        [
            event(estimated=True, status="incomplete"),
            event(status="error", http_status=500, cost_usd=Decimal(0)),
            event(),
        ]
    )
    [row] = rows_by(store)
    assert (row["requests"], row["estimated_requests"], row["error_requests"]) == (3, 1, 1)


def test_missing_project_is_unallocated_missing_team_is_null(store: SQLiteStore) -> None:
    store.append_events([event(project=None, team=None, cost_usd=Decimal("0.3"))])
    [row] = rows_by(store, "project", "team")
    assert row["project"] == "unallocated"
    assert row["team"] is None
    [listed] = store.list_events()
    assert listed["project"] == "unallocated"
    assert listed["team"] is None


def test_tag_values_that_look_like_numbers_stay_text(store: SQLiteStore) -> None:
    store.append_events([event(tags={"run": "007"}), event(tags={"run": "7"})])
    assert sorted(r["tag:run"] for r in rows_by(store, "tag:run")) == ["007", "7"]


@pytest.mark.parametrize("text", ["bogus", "project,bogus", "tag:", "tag:a b", "project,project", 'tag:x"y'])
def test_bad_dimensions_refused(text: str) -> None:
    with pytest.raises(ReportError):
        parse_dimensions(text)


def test_dimensions_parsed() -> None:
    assert parse_dimensions(" project , tag:agent,day ") == ("project", "tag:agent", "day")
    assert parse_dimensions("") == ()


def test_list_events_newest_first_and_limit(store: SQLiteStore) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    # appended out of order: the listing orders by time, not by insertion
    store.append_events([event(id="b", ts=base + timedelta(hours=2)), event(id="a", ts=base)])
    store.append_events([event(id="c", ts=base + timedelta(hours=1))])
    assert [e["id"] for e in store.list_events()] == ["b", "c", "a"]
    assert [e["id"] for e in store.list_events(limit=2)] == ["b", "c"]


# --- teams, projects, keys ----------------------------------------------------------------
def test_config_version_bumps_on_every_change(store: SQLiteStore) -> None:
    versions = [store.config_version()]
    management.create_team(store, "payments", "CC-42")
    versions.append(store.config_version())
    management.create_project(store, "checkout", "payments")
    versions.append(store.config_version())
    management.create_key(store, "k1", project="checkout")
    versions.append(store.config_version())
    store.revoke_key("k1")
    versions.append(store.config_version())
    assert versions == sorted(set(versions))  # strictly increasing
    assert len(versions) == 5
    # refused changes do not bump
    with pytest.raises(StoreError):
        management.create_team(store, "payments")
    with pytest.raises(StoreError):
        management.create_project(store, "other", "no-such-team")
    assert store.config_version() == versions[-1]
    assert store.load_directory().version == versions[-1]


def test_directory_snapshot(store: SQLiteStore) -> None:
    management.create_team(store, "payments", "CC-42")
    management.create_project(store, "checkout", "payments")
    new = management.create_key(store, "k1", project="checkout", lock=True, environment="staging")
    directory = store.load_directory()
    assert directory.teams["payments"].cost_center == "CC-42"
    assert directory.projects["checkout"].team == "payments"
    key = directory.keys_by_hash[new.key.key_hash]
    assert (key.name, key.project, key.locked, key.environment, key.revoked) == (
        "k1",
        "checkout",
        True,
        "staging",
        False,
    )
    store.revoke_key("k1")
    assert store.load_directory().keys_by_hash[new.key.key_hash].revoked is True


def test_management_refusals(store: SQLiteStore) -> None:
    management.create_team(store, "payments")
    with pytest.raises(StoreError, match="unknown team"):
        management.create_project(store, "checkout", "nope")
    management.create_project(store, "checkout", "payments")
    with pytest.raises(StoreError, match="already exists"):
        management.create_project(store, "checkout", "payments")
    with pytest.raises(StoreError, match="unknown project"):
        management.create_key(store, "k", project="nope")
    with pytest.raises(StoreError, match="--lock"):
        management.create_key(store, "k", lock=True)
    management.create_key(store, "k")
    with pytest.raises(StoreError, match="already exists"):
        management.create_key(store, "k")
    with pytest.raises(StoreError, match="unknown key"):
        store.revoke_key("missing")
    with pytest.raises(StoreError):
        management.create_team(store, "-bad name")


def test_keys_stored_only_as_hash(tmp_path: Path, store: SQLiteStore) -> None:
    management.create_team(store, "payments")
    management.create_project(store, "checkout", "payments")
    secrets = [management.create_key(store, f"k{i}", project="checkout").secret for i in range(3)]
    store.revoke_key("k0")
    assert all(s.startswith("sg-") and len(s) > 40 for s in secrets)
    assert len(set(secrets)) == 3

    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
        hashes = [r[0] for r in conn.execute("SELECT key_hash FROM gateway_keys ORDER BY name")]
    assert len(hashes) == 3
    for secret in secrets:
        assert secret not in dump
        assert secret[3:] not in dump  # not even without its prefix
        assert secret[:20] not in dump  # nor a usable share of it
    # ... nor in the raw bytes of the database and its write-ahead log
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("ledger.db"))
    for secret in secrets:
        assert secret.encode() not in raw
    # listing shows only the short display prefix
    for key, secret in zip(store.list_keys(), secrets, strict=True):
        assert key.key_prefix == secret[:9] + "…"
        assert secret not in repr(key)


# --- EventWriter --------------------------------------------------------------------------
class FlakyStore(SQLiteStore):
    """A real store whose first ``failures`` appends fail, before or after the commit."""

    def __init__(self, path: Path, failures: int, *, after_commit: bool = False) -> None:
        super().__init__(path)
        self.failures = failures
        self.after_commit = after_commit
        self.calls = 0

    def append_new(self, events: Sequence[UsageEvent]) -> set[str]:  # append_events too
        self.calls += 1
        if self.calls <= self.failures:
            if self.after_commit:
                super().append_new(events)  # stored, but the caller never hears it
            raise sqlite3.OperationalError("database is locked")
        return super().append_new(events)


async def test_writer_aclose_flushes_everything(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    writer = EventWriter(store, flush_interval=60)  # never flushes on its own in this test
    writer.start()
    events = [event() for _ in range(250)]
    for e in events:
        writer.record(e)
    assert writer.pending == 250
    await writer.aclose()
    assert writer.pending == 0
    assert writer.written == 250
    store.close()
    assert count_rows(tmp_path / "w.db") == 250


async def test_a_periodic_round_leaves_less_than_a_batch_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under steady traffic a round ships full batches and leaves the rest for the next tick
    # (not a transaction per handful of events); flush still ships everything.
    monkeypatch.setattr("spendgate.ledger.spool.writer.MAX_BATCH", 2)
    store = SQLiteStore(tmp_path / "w.db")
    writer = EventWriter(store, flush_interval=60)
    for _ in range(5):
        writer.record(event())
    assert await writer._ship_all(drain=False)
    assert (writer.written, writer.pending) == (4, 1)
    await writer.flush()
    assert (writer.written, writer.pending) == (5, 0)
    await writer.aclose()
    store.close()


async def test_writer_background_flush(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    writer = EventWriter(store, flush_interval=0.01)
    writer.start()
    for _ in range(5):
        writer.record(event())
    for _ in range(200):
        if writer.written == 5:
            break
        await asyncio.sleep(0.01)
    assert writer.written == 5
    assert len(store.list_events()) == 5
    await writer.aclose()
    store.close()


async def test_writer_aclose_without_start(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    writer = EventWriter(store)
    writer.record(event())
    await writer.aclose()
    assert len(store.list_events()) == 1
    store.close()


async def test_writer_more_than_one_batch(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    writer = EventWriter(store, flush_interval=60)
    writer.start()
    for _ in range(4500):  # MAX_BATCH is 2000: three batches
        writer.record(event())
    await writer.aclose()
    assert writer.written == 4500
    store.close()
    assert count_rows(tmp_path / "w.db") == 4500


@pytest.mark.parametrize("after_commit", [False, True], ids=["fails-before-commit", "fails-after-commit"])
async def test_writer_retries_until_stored_exactly_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, after_commit: bool
) -> None:
    store = FlakyStore(tmp_path / "w.db", failures=3, after_commit=after_commit)
    writer = EventWriter(store, flush_interval=60)
    writer.start()
    events = [event() for _ in range(40)]
    for e in events[:25]:
        writer.record(e)
    flushing = asyncio.create_task(writer.flush())
    await asyncio.sleep(0)
    for e in events[25:]:  # recorded while the store is failing
        writer.record(e)
    await flushing
    await writer.aclose()
    assert store.calls > 3
    assert writer.pending == 0
    # what the store reported as new: all of it, unless a failed call had in fact committed
    assert writer.written == 40 if not after_commit else writer.written < 40
    store.close()
    with sqlite3.connect(tmp_path / "w.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM usage_events")]
    assert sorted(ids) == sorted(e.id for e in events)
    assert "ledger write failed" in caplog.text

"""The PostgreSQL store on a real server, each test in a fresh schema: the important SQLite
ledger tests again, and the same calls made on both backends giving the same answers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
import pytest

from spendgate import management
from spendgate.budgets.model import Budget, Policy, RateLimit, Scope
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.writer import EventWriter
from spendgate.ledger.store import StoreError, open_store
from spendgate.ledger.store.dialects.postgresql import PostgresStore
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.ledger.store.migrate import available
from spendgate.reports.spec import PLAIN_DIMENSIONS, ReportQuery

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
def store(postgres_db: Callable[[], str]) -> Iterator[PostgresStore]:
    s = PostgresStore(postgres_db())
    yield s
    s.close()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "ledger.db")
    yield s
    s.close()


def scalar(store: PostgresStore, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(store.url) as conn:
        return conn.execute(sql, params).fetchone()[0]  # type: ignore[index]


def rows_by(store: Any, *by: str, **kwargs: Any) -> list[dict[str, Any]]:
    return store.report(ReportQuery(by=by, **kwargs)).as_json()["rows"]


# The events of test_ledger_sqlite's report tests, and a few more shapes.
def sample_events() -> list[UsageEvent]:
    d = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
    return [
        event(
            ts=d,
            project="checkout",
            team="payments",
            feature="cart",
            environment="production",
            customer="acme",
            model="gpt-4o",
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
        event(ts=d, project="support", model="mystery", cost_usd=None, input_tokens=9, status="incomplete"),
        event(ts=d, project="support", status="error", http_status=500, estimated=True, cost_usd=Decimal(0)),
        event(ts=datetime(2025, 5, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), tags={"run": "007"}),
    ]


# --- appending ----------------------------------------------------------------------------
def test_append_stores_every_field_as_sqlite_does(store: PostgresStore, sqlite: SQLiteStore) -> None:
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
    assert stored["ts"] == "2025-03-10T12:00:00.000000Z"
    assert stored["cost_usd"] == "0.004125"
    assert stored["tags"] == {"agent": "copilot", "run": "7"}
    assert stored["estimated"] is True and stored["stream"] is True
    sqlite.append_events([e])
    assert stored == sqlite.list_events()[0]
    assert scalar(store, "SELECT cost_usd::text FROM usage_events") == "0.00412500"  # NUMERIC, as given


def test_append_same_id_once_in_batch_and_across_batches(store: PostgresStore) -> None:
    a, b, c = event(), event(), event()
    assert store.append_events([a, b, a]) == 2
    assert store.append_events([a, b]) == 0
    assert store.append_events([b, c]) == 1
    assert store.append_events([]) == 0
    assert scalar(store, "SELECT count(*) FROM usage_events") == 3


def test_duplicate_id_keeps_the_first_version(store: PostgresStore) -> None:
    first = event(cost_usd=Decimal("0.5"))
    store.append_events([first, event(id=first.id, cost_usd=Decimal("7"))])
    store.append_events([event(id=first.id, cost_usd=Decimal("9"))])
    assert store.report(ReportQuery()).total_cost_usd == Decimal("0.5")


def test_large_batches_and_concurrent_writers_store_each_event_once(store: PostgresStore) -> None:
    events = [event(ts=datetime(2025, 3, 10, tzinfo=UTC) + timedelta(seconds=i)) for i in range(3000)]
    assert store.append_events(events[:2000]) == 2000
    # four writers racing with overlapping batches: every id lands once, and the counts of
    # new rows they report add up to exactly what was missing
    new: list[int] = []
    lock = threading.Lock()

    def write(batch: list[UsageEvent]) -> None:
        n = store.append_events(batch)
        with lock:
            new.append(n)

    threads = [threading.Thread(target=write, args=(events[i * 500 : i * 500 + 1500],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(new) == 1000
    assert scalar(store, "SELECT count(*) FROM usage_events") == 3000
    assert scalar(store, "SELECT count(DISTINCT id) FROM usage_events") == 3000


def test_non_utc_timestamps_are_stored_in_utc(store: PostgresStore) -> None:
    # 01:00 on 1 May at UTC+02:00 is still 30 April in UTC, whatever the session's zone.
    ts = datetime(2025, 5, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    store.append_events([event(ts=ts)])
    assert store.list_events()[0]["ts"] == "2025-04-30T23:00:00.000000Z"
    assert rows_by(store, "day")[0]["day"] == "2025-04-30"
    assert rows_by(store, "month")[0]["month"] == "2025-04"


# --- reports ------------------------------------------------------------------------------
@pytest.fixture
def filled(store: PostgresStore, sqlite: SQLiteStore) -> tuple[PostgresStore, SQLiteStore]:
    events = sample_events()
    assert store.append_events(events) == len(events)
    sqlite.append_events(events)
    return store, sqlite


@pytest.mark.parametrize("dim", [*PLAIN_DIMENSIONS, "tag:agent", "tag:run"])
def test_report_by_each_dimension_as_sqlite(filled: tuple[PostgresStore, SQLiteStore], dim: str) -> None:
    pg, lite = filled
    assert pg.report(ReportQuery(by=(dim,))).as_json() == lite.report(ReportQuery(by=(dim,))).as_json()


def test_report_by_each_dimension_figures(filled: tuple[PostgresStore, SQLiteStore]) -> None:
    pg, _ = filled
    by_project = {r["project"]: r for r in rows_by(pg, "project")}
    assert by_project["checkout"] == {
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
    support = by_project["support"]
    assert (support["requests"], support["unpriced_requests"], support["estimated_requests"]) == (3, 1, 1)
    assert (support["error_requests"], support["cost_usd"], support["reasoning_tokens"]) == (1, "0.0001", 3)
    assert by_project["unallocated"]["requests"] == 2
    assert {r["tag:agent"]: r["cost_usd"] for r in rows_by(pg, "tag:agent")} == {
        "copilot": "0.0065",
        "triage": "0.0001",
        None: "0.00102",
    }
    assert {r["day"] for r in rows_by(pg, "day")} == {
        "2025-03-10",
        "2025-03-11",
        "2025-04-01",
        "2025-04-02",
        "2025-04-30",
    }
    assert sorted(r["tag:run"] or "" for r in rows_by(pg, "tag:run")) == ["", "007", "2"]  # text, never 7


@pytest.mark.parametrize(
    "by",
    [(), ("project", "feature"), ("team", "day"), ("month", "tag:agent", "provider"), ("key", "trace", "customer")],
)
def test_report_by_several_dimensions_as_sqlite(filled: tuple[PostgresStore, SQLiteStore], by: tuple[str, ...]) -> None:
    pg, lite = filled
    assert pg.report(ReportQuery(by=by)).as_json() == lite.report(ReportQuery(by=by)).as_json()


def test_report_since_until_inclusive(filled: tuple[PostgresStore, SQLiteStore]) -> None:
    pg, lite = filled

    def total(store: Any, since: date | None, until: date | None) -> tuple[str, int]:
        result = store.report(ReportQuery(since=since, until=until)).as_json()
        return result["total_cost_usd"], result["total_requests"]

    assert total(pg, date(2025, 3, 10), date(2025, 3, 10)) == ("0.004", 3)
    assert total(pg, date(2025, 3, 11), date(2025, 4, 1)) == ("0.0026", 2)  # 4-01 00:00:00 included
    assert total(pg, date(2025, 4, 2), date(2025, 4, 2)) == ("0.00002", 1)  # 23:59:59.999999 included
    assert total(pg, date(2025, 5, 1), None) == ("0", 0)
    assert total(pg, None, date(2025, 3, 9)) == ("0", 0)
    for since, until in [(date(2025, 3, 11), None), (None, date(2025, 3, 31)), (date(2025, 4, 1), date(2025, 4, 30))]:
        assert total(pg, since, until) == total(lite, since, until)


def test_report_empty_ledger(store: PostgresStore) -> None:
    assert store.report(ReportQuery()).as_json()["rows"] == []
    assert store.report(ReportQuery(by=("project",))).as_json()["total_cost_usd"] == "0"


def test_decimal_totals_are_exact(store: PostgresStore) -> None:
    store.append_events([event(cost_usd=Decimal("0.000000075"), project="p") for _ in range(1000)])
    result = store.report(ReportQuery(by=("project",)))
    assert result.rows[0].cost_usd == Decimal("0.000075")
    assert result.as_json()["total_cost_usd"] == "0.000075"
    assert result.rows[0].requests == 1000
    store.append_events([event(cost_usd=Decimal("0.1"), project="q") for _ in range(10)])
    assert {r["project"]: r["cost_usd"] for r in rows_by(store, "project")}["q"] == "1"  # floats: 0.9999999999999999


def test_numeric_has_no_precision_cap(store: PostgresStore) -> None:
    big, tiny = Decimal("123456789012345678901234567890"), Decimal("0.000000000000000000000000000001")
    store.append_events([event(cost_usd=big), event(cost_usd=tiny)])
    # 60 significant digits: summed exactly by the server (a 28-digit Decimal context would round)
    assert store.report(ReportQuery()).rows[0].cost_usd == Decimal(
        "123456789012345678901234567890.000000000000000000000000000001"
    )


def test_unpriced_events_counted_not_summed(store: PostgresStore) -> None:
    store.append_events(
        [
            event(project="p", model="mystery-model", cost_usd=None, input_tokens=100),
            event(project="p", cost_usd=Decimal("0.25"), input_tokens=10),
            event(project="q", model="mystery-model", cost_usd=None),
        ]
    )
    data = store.report(ReportQuery(by=("project",))).as_json()
    rows = {r["project"]: r for r in data["rows"]}
    assert (rows["p"]["cost_usd"], rows["p"]["requests"], rows["p"]["unpriced_requests"]) == ("0.25", 2, 1)
    assert (rows["q"]["cost_usd"], rows["q"]["unpriced_requests"]) == (None, 1)  # unknown, not 0
    assert (data["total_cost_usd"], data["unpriced_requests"]) == ("0.25", 2)
    unpriced = [e for e in store.list_events() if e["model"] == "mystery-model"]
    assert all(e["cost_usd"] is None and e["priced"] is False for e in unpriced)


def test_list_events_newest_first_and_limit(store: PostgresStore) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    store.append_events([event(id="b", ts=base + timedelta(hours=2)), event(id="a", ts=base)])
    store.append_events([event(id="c", ts=base + timedelta(hours=1)), event(id="c2", ts=base + timedelta(hours=1))])
    assert [e["id"] for e in store.list_events()] == ["b", "c2", "c", "a"]  # same instant: last stored first
    assert [e["id"] for e in store.list_events(limit=2)] == ["b", "c2"]


async def test_writer_batches_into_postgres(store: PostgresStore) -> None:
    writer = EventWriter(store, flush_interval=60)
    writer.start()
    for _ in range(4500):  # MAX_BATCH is 2000: three batches
        writer.record(event())
    await writer.aclose()
    assert writer.written == 4500
    assert scalar(store, "SELECT count(*) FROM usage_events") == 4500


# --- teams, projects, keys ----------------------------------------------------------------
def test_config_version_bumps_on_every_change(store: PostgresStore) -> None:
    versions = [store.config_version()]
    management.create_team(store, "payments", "CC-42")
    versions.append(store.config_version())
    management.create_project(store, "checkout", "payments")
    versions.append(store.config_version())
    management.create_key(store, "k1", project="checkout")
    versions.append(store.config_version())
    store.revoke_key("k1")
    versions.append(store.config_version())
    store.revoke_key("k1")  # already revoked: nothing changes
    store.create_budget(Budget(name="b", scope=Scope.parse("team:payments"), limit_usd=Decimal(5)))
    versions.append(store.config_version())
    store.create_limit(RateLimit(Scope.parse("project:checkout"), rpm=5))
    versions.append(store.config_version())
    store.create_policy(Policy("production", ("feature",)))
    versions.append(store.config_version())
    store.add_webhook("https://example.com/hook")
    versions.append(store.config_version())
    assert versions == list(range(versions[0], versions[0] + 9))
    with pytest.raises(StoreError):
        management.create_team(store, "payments")
    with pytest.raises(StoreError):
        management.create_project(store, "other", "no-such-team")
    assert store.config_version() == versions[-1]
    assert store.load_directory().version == versions[-1]


def test_directory_snapshot(store: PostgresStore) -> None:
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
    assert store.list_keys()[0].revoked is True


def refusals(store: Any) -> list[str]:
    """Every refusal's message, for comparing the backends (the CLI prints these)."""
    messages = []
    management.create_team(store, "payments")
    for attempt in (
        lambda: management.create_team(store, "payments"),
        lambda: management.create_project(store, "checkout", "nope"),
        lambda: (
            management.create_project(store, "checkout", "payments"),
            management.create_project(store, "checkout", "payments"),
        ),
        lambda: management.create_key(store, "k", project="nope"),
        lambda: management.create_key(store, "k", lock=True),
        lambda: (management.create_key(store, "k"), management.create_key(store, "k")),
        lambda: store.revoke_key("missing"),
        lambda: management.create_team(store, "-bad name"),
        lambda: (
            store.create_budget(Budget(name="b", scope=Scope.parse("org"), limit_usd=Decimal(1))),
            store.create_budget(Budget(name="b", scope=Scope.parse("org"), limit_usd=Decimal(1))),
        ),
        lambda: store.create_budget(Budget(name="c", scope=Scope.parse("team:nope"), limit_usd=Decimal(1))),
        lambda: store.delete_budget("nope"),
        lambda: store.delete_limit("team:nope"),
        lambda: store.delete_policy("nope"),
        lambda: store.create_limit(RateLimit(Scope.parse("key:nope"), rpm=1)),
        lambda: store.add_webhook("not-a-url"),
        lambda: (store.add_webhook("https://example.com/h"), store.add_webhook("https://example.com/h")),
        lambda: store.remove_webhook("wh_nope"),
    ):
        with pytest.raises(StoreError) as info:
            attempt()
        messages.append(str(info.value))
    return messages


def test_refusals_say_the_same_as_sqlite(store: PostgresStore, sqlite: SQLiteStore) -> None:
    pg = refusals(store)
    assert pg == refusals(sqlite)
    assert "unknown team 'nope'; create it first with `spendgate teams create nope`" in pg
    assert "key 'k' already exists" in pg


def test_a_lost_race_is_a_store_error_naming_the_duplicate(store: PostgresStore) -> None:
    management.create_team(store, "payments")
    version = store.config_version()
    # as if another process created it between the check and the insert
    with pytest.raises(StoreError, match="team 'payments' already exists"):
        store._write(
            [("INSERT INTO teams (name, created_at) VALUES (?, now())", ("payments",))],
            duplicate="team 'payments' already exists",
        )
    assert store.config_version() == version  # the whole transaction rolled back


def test_keys_stored_only_as_hash(store: PostgresStore) -> None:
    management.create_team(store, "payments")
    management.create_project(store, "checkout", "payments")
    secrets = [management.create_key(store, f"k{i}", project="checkout").secret for i in range(3)]
    store.revoke_key("k0")
    with psycopg.connect(store.url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        dump = "\n".join(
            str(row) for table in tables for row in conn.execute(f"SELECT row_to_json(t)::text FROM {table} t")
        )
    assert "gateway_keys" in tables and "k1" in dump
    for secret in secrets:
        assert secret not in dump
        assert secret[3:] not in dump  # not even without its prefix
        assert secret[:20] not in dump  # nor a usable share of it
    for key, secret in zip(store.list_keys(), secrets, strict=True):
        assert key.key_prefix == secret[:9] + "…"


# --- budgets, limits, policies --------------------------------------------------------------
def test_budgets_limits_policies_as_sqlite(store: PostgresStore, sqlite: SQLiteStore) -> None:
    for s in (store, sqlite):
        management.create_team(s, "eng")
        s.create_budget(
            Budget(
                name="eng-monthly",
                scope=Scope.parse("team:eng"),
                limit_usd=Decimal("99.50"),
                period="month",
                timezone="Europe/Paris",
                alert_at=(50, 90),
                soft=True,
            )
        )
        s.create_budget(
            Budget(name="agents", scope=Scope.parse("tag:agent=copilot"), limit_usd=Decimal(3), alert_at=())
        )
        s.create_limit(RateLimit(Scope.parse("team:eng"), rpm=10))
        s.create_limit(RateLimit(Scope.parse("team:eng"), rpm=20, tpm=5_000_000_000))  # replaces
        s.create_policy(Policy("production", ("feature", "customer")))
        s.create_policy(Policy("production", ("feature",)))  # replaces
        s.create_policy(Policy("staging", ("customer",)))
        s.delete_policy("staging")
    assert store.load_rules() == sqlite.load_rules()
    assert store.list_budgets()[1].limit_usd.as_tuple() == Decimal("99.50").as_tuple()
    assert store.list_limits() == [RateLimit(Scope.parse("team:eng"), 20, 5_000_000_000)]
    store.delete_budget("agents")
    store.delete_limit("team:eng")
    assert [b.name for b in store.list_budgets()] == ["eng-monthly"]
    assert store.list_limits() == []


def test_spend_by_scope_and_window_as_sqlite(filled: tuple[PostgresStore, SQLiteStore]) -> None:
    pg, lite = filled
    march = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    paris = timezone(timedelta(hours=2))
    for scope in [
        "org",
        "team:payments",
        "project:support",
        "key:k1",
        "customer:acme",
        "feature:cart",
        "tag:agent=copilot",
        "tag:run=007",
        "team:nobody",
    ]:
        for start, end in [(None, None), march, (datetime(2025, 4, 1, 2, tzinfo=paris), None), (None, march[0])]:
            assert pg.spend(Scope.parse(scope), start, end) == lite.spend(Scope.parse(scope), start, end), scope
    assert pg.spend(Scope.parse("team:payments"), *march) == Decimal("0.0065")
    assert pg.spend(Scope.parse("org"), datetime(2025, 4, 1, tzinfo=UTC), None) == Decimal("0.00112")
    assert pg.spend(Scope.parse("team:nobody"), None, None) == 0


# Every migration file shipped with the package, in order (each test database gets them all).
ALL_VERSIONS = [m.version for m in available("postgresql")]
ALL_LABELS = [m.label for m in available("postgresql")]
LATEST = ALL_VERSIONS[-1]
assert ALL_VERSIONS[:2] == ["0001", "0002"]


# --- opening, migrations ----------------------------------------------------------------------
def test_open_store_gives_postgres_for_postgres_urls(postgres_db: Callable[[], str]) -> None:
    url = postgres_db()
    for scheme_url in (url, url.replace("postgresql://", "postgres://", 1)):
        s = open_store(scheme_url)
        try:
            assert isinstance(s, PostgresStore)
            assert s.schema_versions() == ALL_VERSIONS
        finally:
            s.close()


def test_unreachable_server_is_a_clear_store_error(postgres_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    with pytest.raises(StoreError, match=rf"cannot connect to PostgreSQL at postgres@127.0.0.1:{port}/db"):
        open_store(f"postgresql://postgres:hunter2@127.0.0.1:{port}/db")
    try:
        open_store(f"postgresql://postgres:hunter2@127.0.0.1:{port}/db")
    except StoreError as exc:
        assert "hunter2" not in str(exc)


def test_migrations_are_recorded_and_idempotent(store: PostgresStore) -> None:
    with psycopg.connect(store.url) as conn:
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert [(v, n) for v, n, _ in rows] == [(m.version, m.name) for m in available("postgresql")]
    assert all(at is not None for *_, at in rows)
    assert store.migrate() == []
    again = PostgresStore(store.url)  # opening again applies nothing and keeps the data
    again.close()
    assert scalar(store, "SELECT count(*) FROM schema_migrations") == len(ALL_VERSIONS)


def test_without_auto_migrate_a_fresh_schema_is_refused(postgres_db: Callable[[], str]) -> None:
    url = postgres_db()
    with pytest.raises(StoreError, match="spendgate migrate"):
        PostgresStore(url, auto_migrate=False)
    s = PostgresStore(url)  # migrates
    s.close()
    s = PostgresStore(url, auto_migrate=False)
    s.close()


def test_concurrent_migrations_from_threads_apply_each_version_once(postgres_db: Callable[[], str]) -> None:
    from spendgate.ledger.store import migrate as migrations
    from spendgate.ledger.store.dialects.postgresql import PostgresDialect

    url = postgres_db()
    barrier = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            dialect = PostgresDialect(url)
            with dialect.setup_session() as session:
                barrier.wait()
                results.append(migrations.migrate(session, dialect))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for applied in results for v in applied) == ALL_VERSIONS


def test_concurrent_migrations_from_processes(postgres_db: Callable[[], str]) -> None:
    import subprocess
    import sys

    import orjson

    url = postgres_db()
    command = [sys.executable, "-m", "spendgate.cli.migrate", "--db", url, "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        outcomes.append(orjson.loads(out))
    assert sorted(label for o in outcomes for label in o["applied"]) == ALL_LABELS
    assert {o["version"] for o in outcomes} == {LATEST}


def test_migrate_command(postgres_db: Callable[[], str], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from spendgate.cli.migrate import migrate_command

    url = postgres_db()
    runner = CliRunner()
    check = runner.invoke(migrate_command, ["--db", url, "--check"])
    assert check.exit_code == 1 and f"pending migrations: {', '.join(ALL_LABELS)}" in check.output
    first = runner.invoke(migrate_command, ["--db", url])
    assert first.exit_code == 0, first.output
    assert f"applied {', '.join(ALL_LABELS)}; schema at version {LATEST}" in first.output
    second = runner.invoke(migrate_command, ["--db", url])
    assert f"schema up to date at version {LATEST}; nothing to apply" in second.output
    assert runner.invoke(migrate_command, ["--db", url, "--check"]).exit_code == 0
    lite = runner.invoke(migrate_command, ["--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert lite.exit_code == 0 and "SQLite" in lite.output and (tmp_path / "x.db").is_file()
    refused = runner.invoke(migrate_command, ["--db", "postgresql://postgres@127.0.0.1:1/db"])
    assert refused.exit_code == 1 and "cannot connect to PostgreSQL" in refused.output


def test_connections_the_server_dropped_are_replaced(store: PostgresStore) -> None:
    store.append_events([event()])
    app_name = psycopg.conninfo.conninfo_to_dict(store.url)["application_name"]
    with psycopg.connect(store.url, autocommit=True) as conn:
        # as a database restart or a failover would: every connection of the pool is gone
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (app_name,),
        ).fetchone()[0]  # type: ignore[index]
    assert killed >= 1
    assert store.config_version() == 0  # no error reaches the caller
    assert store.append_events([event()]) == 1


def test_a_search_path_naming_no_schema_is_a_clear_store_error(postgres_url: str) -> None:
    from tests.conftest import schema_url

    with pytest.raises(StoreError, match="search_path names no existing schema"):
        PostgresStore(schema_url(postgres_url, "sgtest_does_not_exist"))

"""Retention (raw events pruned, rollups kept), `spendgate prune`, and rollups built for the
events of a ledger that predates them (SQLite schema 1 -> 2, PostgreSQL migration 0003)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from spendgate.budgets.model import Scope
from spendgate.cli.ledger import prune_command
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.retention import RetentionJob, retention_cutoff
from spendgate.ledger.store import StoreError
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.reports.spec import ReportError, ReportQuery
from spendgate.settings import SettingsError, load_settings
from tests.test_rollups import REPORT_SHAPES, T0, event, fill, random_events


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SQLiteStore(tmp_path / "ledger.db")
    else:
        from spendgate.ledger.store.dialects.postgresql import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_db")())
    yield s
    s.close()


def again(events: list[UsageEvent]) -> list[UsageEvent]:
    """The same events under new ids."""
    return [dataclasses.replace(e, id=f"{e.id}-again") for e in events]


def by_team(store: Any, **kwargs: Any) -> dict[str | None, tuple[Decimal, int]]:
    rows = store.report(ReportQuery(by=("team",), **kwargs)).rows
    return {r.dims["team"]: (r.cost_usd, r.requests) for r in rows}


def test_prune_deletes_old_raw_events_and_reports_still_answer_from_rollups(store: Any) -> None:
    rng = random.Random(2)
    fill(store, random_events(rng, 900), rng)
    before = {by: store.report(ReportQuery(by=by)) for by in REPORT_SHAPES}
    horizon = T0 + timedelta(days=4, hours=6)
    old = sum(1 for e in store.list_events(10_000) if e["ts"] < "2025-03-05T06")
    assert old > 0
    assert store.prune(horizon) == old
    assert store.raw_events_pruned_before() == horizon
    assert all(e["ts"] >= "2025-03-05T06" for e in store.list_events(10_000))
    for by, result in before.items():
        assert store.report(ReportQuery(by=by)) == result, by
    assert store.prune(horizon) == 0  # again: nothing left to delete


def test_reports_needing_pruned_raw_events_are_refused_with_the_horizon(store: Any) -> None:
    store.append_events([event(ts=T0 + timedelta(days=d), trace_id=f"t{d}", tags={"w": "x"}) for d in range(6)])
    store.prune(T0 + timedelta(days=2, hours=12))
    for by in (("trace",), ("tag:w",), ("team", "trace")):
        with pytest.raises(ReportError, match=r"2025-03-03T12:00:00\+00:00.*--since 2025-03-04"):
            store.report(ReportQuery(by=by))
        with pytest.raises(ReportError, match="deleted by retention"):
            store.report(ReportQuery(by=by, since=date(2025, 3, 3)))  # the horizon's day is partial
    rows = store.report(ReportQuery(by=("trace",), since=date(2025, 3, 4))).rows
    assert sorted(r.dims["trace"] for r in rows) == ["t3", "t4", "t5"]
    with pytest.raises(ReportError, match="deleted by retention"):
        store.report(ReportQuery(by=("team",), since=date(2025, 3, 1)), source="events")
    assert by_team(store, since=date(2025, 3, 1)) == {None: (Decimal("0.006"), 6)}  # rollups: all of it


def test_budget_spend_over_pruned_days_comes_from_rollups(store: Any) -> None:
    store.append_events([event(ts=T0 + timedelta(hours=h), team="a", tags={"w": "x"}) for h in range(0, 240, 5)])
    org, team, tag = Scope("org"), Scope.parse("team:a"), Scope.parse("tag:w=x")
    window = (T0, T0 + timedelta(days=10))
    expected = store.spend(team, *window)
    assert expected == Decimal("0.048")
    store.prune(T0 + timedelta(days=5))
    assert store.spend(team, *window) == expected
    assert store.spend(org, None, None) == expected
    with pytest.raises(StoreError, match="needs raw events that retention deleted"):
        store.spend(tag, *window)  # tag scopes are summed from raw events
    assert store.spend(tag, T0 + timedelta(days=6), T0 + timedelta(days=7)) == Decimal("0.005")
    with pytest.raises(StoreError, match="retention"):  # a half-hour edge before the horizon
        store.spend(team, T0 + timedelta(hours=2, minutes=30), window[1])


def test_events_older_than_the_horizon_are_refused(store: Any) -> None:
    """Their ids may have been pruned: a replay could not be told from a new event, so it is
    refused rather than risk counting it twice."""
    old = event(ts=T0, team="a")
    assert store.append_events([old]) == 1
    store.prune(T0 + timedelta(days=1))
    assert store.append_events([old]) == 0  # a replay of a pruned event
    assert store.append_events([event(ts=T0 + timedelta(hours=3), team="a"), event(ts=T0 + timedelta(days=2))]) == 1
    assert by_team(store) == {"a": (Decimal("0.001"), 1), None: (Decimal("0.001"), 1)}


def test_the_horizon_only_moves_forward(store: Any) -> None:
    store.prune(T0 + timedelta(days=3))
    store.prune(T0 + timedelta(days=1))
    assert store.raw_events_pruned_before() == T0 + timedelta(days=3)


# --- the command ------------------------------------------------------------------------------
def test_prune_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no spendgate.toml from elsewhere
    url = f"sqlite:///{tmp_path / 'l.db'}"
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    s = SQLiteStore(tmp_path / "l.db")
    s.append_events([event(ts=today - timedelta(days=d)) for d in (1, 10, 40, 400, 500)])
    s.close()
    runner = CliRunner()

    refused = runner.invoke(prune_command, ["--db", url], env={"SPENDGATE_RETENTION_DAYS": ""})
    assert refused.exit_code == 2 and "pass --before YYYY-MM-DD or set retention_days" in refused.output
    bad = runner.invoke(prune_command, ["--db", url], env={"SPENDGATE_RETENTION_DAYS": "30"})
    assert bad.exit_code == 2 and "at least 35" in bad.output

    by_env = runner.invoke(prune_command, ["--db", url, "--json"], env={"SPENDGATE_RETENTION_DAYS": "365"})
    assert by_env.exit_code == 0, by_env.output
    assert '"deleted": 2' in by_env.output  # 400 and 500 days old
    explicit = runner.invoke(prune_command, ["--db", url, "--before", (today - timedelta(days=5)).strftime("%Y-%m-%d")])
    assert explicit.exit_code == 0, explicit.output  # --before is explicit: no floor
    assert "deleted 2 raw events before" in explicit.output and "rollups kept" in explicit.output
    s = SQLiteStore(tmp_path / "l.db")
    try:
        assert len(s.list_events()) == 1
        assert s.report(ReportQuery()).total_requests == 5
    finally:
        s.close()
    assert runner.invoke(prune_command, ["--db", url, "--before", "yesterday"]).exit_code == 2


def test_retention_days_setting(tmp_path: Path) -> None:
    assert load_settings({}, {}).retention_days is None
    assert load_settings({}, {"SPENDGATE_RETENTION_DAYS": "90"}).retention_days == 90
    config = tmp_path / "c.toml"
    config.write_text("retention_days = 400\n")
    assert load_settings({}, {}, config_path=config).retention_days == 400
    assert load_settings({}, {"SPENDGATE_RETENTION_DAYS": "35"}).retention_days == 35
    with pytest.raises(SettingsError, match="at least 35"):
        load_settings({}, {"SPENDGATE_RETENTION_DAYS": "34"})


def test_retention_cutoff_is_utc_midnight_days_back() -> None:
    assert retention_cutoff(date(2026, 3, 31), 35) == datetime(2026, 2, 24, tzinfo=UTC)
    assert retention_cutoff(date(2026, 1, 1), 365) == datetime(2025, 1, 1, tzinfo=UTC)


async def test_retention_job_prunes_with_its_clock_and_survives_a_failing_store(store: Any) -> None:
    now = T0 + timedelta(days=100, hours=5)
    store.append_events([event(ts=T0 + timedelta(days=d, hours=1)) for d in (0, 1, 64, 65, 99)])
    job = RetentionJob(store, 35, clock=lambda: now, interval=0.01)
    # cut-off: midnight UTC 35 days before day 100 = day 65 at 00:00; days 0, 1 and 64 go.
    assert await job.run_once() == 3
    assert await job.run_once() == 0
    assert store.raw_events_pruned_before() == T0 + timedelta(days=65)
    assert store.report(ReportQuery()).total_requests == 5  # rollups kept every request

    class Down:
        calls = 0

        def prune(self, before: datetime) -> int:
            Down.calls += 1
            raise StoreError("database unreachable")

    failing = RetentionJob(Down(), 35, clock=lambda: now, interval=0.01)  # type: ignore[arg-type]
    failing.start()
    for _ in range(200):
        if Down.calls >= 2:
            break
        await asyncio.sleep(0.01)
    await failing.aclose()
    assert Down.calls >= 2  # it logged, waited, and tried again


# --- ledgers from before rollups -----------------------------------------------------------
def test_sqlite_ledger_from_schema_1_gets_rollups_of_its_events(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    rng = random.Random(9)
    events = random_events(rng, 700)
    s = SQLiteStore(path)
    fill(s, events, rng)
    expected = {by: s.report(ReportQuery(by=by), source="events") for by in REPORT_SHAPES}
    s.close()
    with sqlite3.connect(path) as conn:  # what a version 1 database looked like (before schema_migrations)
        conn.executescript(
            "DROP TABLE rollup_dims; DROP TABLE rollup_hourly; DROP TABLE rollup_daily; DROP TABLE rollup_daily_lean;"
            " DROP TABLE schema_migrations; INSERT INTO meta (name, value) VALUES ('schema_version', 1);"
            # and without what migrations after 0003 added (0004: key scopes, 0006: service tiers)
            " DROP TABLE gateway_key_projects; ALTER TABLE gateway_keys DROP COLUMN team;"
            " ALTER TABLE gateway_keys DROP COLUMN org_wide; ALTER TABLE usage_events DROP COLUMN service_tier;"
        )
    s = SQLiteStore(path)
    try:
        for by, result in expected.items():
            assert s.report(ReportQuery(by=by), source="rollups") == result, by
        assert s.schema_versions()[:3] == ["0001", "0002", "0003"]
        dims = s._query("SELECT COUNT(*) FROM rollup_dims")[0][0]
        s.append_events(again(events))  # the same dimension values: no new entries
        assert s._query("SELECT COUNT(*) FROM rollup_dims")[0][0] == dims
    finally:
        s.close()
    SQLiteStore(path).close()  # opening again adds nothing twice
    s = SQLiteStore(path)
    try:
        assert s.report(ReportQuery(by=("team",))) == s.report(ReportQuery(by=("team",)), source="events")
    finally:
        s.close()


def test_postgres_migration_0003_rolls_up_the_events_already_stored(postgres_db: Callable[[], str]) -> None:
    from spendgate.ledger.store import migrate as migrations
    from spendgate.ledger.store.dialects.postgresql import PostgresDialect, PostgresStore

    url = postgres_db()
    rng = random.Random(4)
    events = random_events(rng, 700)
    s = PostgresStore(url)
    fill(s, events, rng)
    expected = {by: s.report(ReportQuery(by=by), source="events") for by in REPORT_SHAPES}
    s.close()
    # Back to version 0002, events kept; the later migrations that change the rollups (0007_sources:
    # the source dimension) run again after 0003.
    later = [m.version for m in migrations.available("postgresql") if m.name == "sources"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE rollup_dims, rollup_hourly, rollup_daily, rollup_daily_lean;"
            " DELETE FROM schema_migrations WHERE version IN ('0003', '0006') OR name = 'sources';"
            " ALTER TABLE usage_events DROP COLUMN service_tier"  # 0006 keys what 0003 wrote
        )
    dialect = PostgresDialect(url)
    with dialect.setup_session() as session:
        assert [m.version for m in migrations.pending(session, dialect)] == ["0003", "0006", *later]
    s = PostgresStore(url)
    try:
        for by, result in expected.items():
            assert s.report(ReportQuery(by=by), source="rollups") == result, by
        # The migration's keys are the ones Python computes: the same values find their entries.
        dims = s._query("SELECT count(*) AS n FROM rollup_dims")[0]["n"]
        s.append_events(again(events))
        assert s._query("SELECT count(*) AS n FROM rollup_dims")[0]["n"] == dims
        assert s.report(ReportQuery(by=("customer",))) == s.report(ReportQuery(by=("customer",)), source="events")
    finally:
        s.close()


# --- the gateway prunes by itself ---------------------------------------------------------------
def test_serve_with_retention_days_prunes_old_raw_events(make_gateway: Callable[..., Any]) -> None:
    now = datetime.now(UTC)
    without = make_gateway()
    assert without.app.retention is None  # no retention_days: nothing is ever deleted
    without.store.append_events([event(ts=now - timedelta(days=d)) for d in (2, 39, 42, 100)])
    # A replica on the same ledger with retention on prunes as it starts (then every hour).
    gateway = make_gateway(db=without.db_url, retention_days=40)
    for _ in range(200):  # the job counts what it deleted once the delete has returned
        if len(gateway.store.list_events()) == 2 and gateway.app.retention.pruned == 2:
            break
        time.sleep(0.05)
    kept = sorted(e["ts"] for e in gateway.store.list_events())
    assert len(kept) == 2, kept  # 2 and 39 days old stay; 42 and 100 go
    assert gateway.store.report(ReportQuery()).total_requests == 4  # the rollups keep them all
    assert gateway.app.retention.pruned == 2
